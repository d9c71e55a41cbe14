//! Small HTTP/1.1 servers on 127.0.0.1 for tests that download: a file server with routes
//! (ETag, Last-Modified, 304, counts of bodies sent) and a server that stalls.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

/// Path → (body, Last-Modified header).
pub type Routes = Arc<Mutex<HashMap<String, (Vec<u8>, Option<String>)>>>;

/// Path → how many times its body was sent.
pub type Served = Arc<Mutex<HashMap<String, usize>>>;

/// Serves `routes` (404 for other paths) until the test ends; returns `http://ADDR`.
pub fn serve(routes: Routes) -> String {
    serve_counting(routes, Served::default())
}

/// As [`serve`], counting bodies sent in `served`. Every body has an `ETag` (from its
/// content); a request whose `If-None-Match` names it gets `304 Not Modified`.
pub fn serve_counting(routes: Routes, served: Served) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut if_none_match = None;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("if-none-match") {
                        if_none_match = Some(value.trim().to_string());
                    }
                }
                line.clear();
            }
            let target = request_line.split(' ').nth(1).unwrap_or("");
            let path = target.split('?').next().unwrap_or("").to_string();
            let found = routes.lock().unwrap().get(&path).cloned();
            let _ = match found {
                Some((body, modified)) => {
                    let etag = format!("\"{}\"", &super::sha256_hex(&body)[..16]);
                    let header = modified
                        .map(|m| format!("Last-Modified: {m}\r\n"))
                        .unwrap_or_default();
                    if if_none_match.as_deref() == Some(etag.as_str()) {
                        write!(
                            stream,
                            "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\n{header}Connection: close\r\n\r\n"
                        )
                    } else {
                        *served.lock().unwrap().entry(path).or_default() += 1;
                        write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: {etag}\r\n{header}Connection: close\r\n\r\n",
                            body.len()
                        )
                        .and_then(|_| stream.write_all(&body))
                    }
                }
                None => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        }
    });
    format!("http://{addr}")
}

/// Serves `body` at `path` (with `modified` as its Last-Modified header).
pub fn route(routes: &Routes, path: &str, body: &[u8], modified: Option<&str>) {
    routes.lock().unwrap().insert(
        path.to_string(),
        (body.to_vec(), modified.map(str::to_string)),
    );
}

/// A server on 127.0.0.1 that accepts connections and, per connection, sends `prefix` (maybe
/// nothing) and then nothing more while the test runs.
pub fn stalling_server(prefix: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = stream.write_all(prefix);
            held.push(stream);
        }
    });
    format!("http://127.0.0.1:{port}")
}

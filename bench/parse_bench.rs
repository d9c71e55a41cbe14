//! Parse throughput benchmark: generates a Dockerfile with 10,000 instructions (a realistic mix:
//! continuations, flags, JSON forms, ENV/LABEL pairs, comments, a few heredocs) and reports
//! MB/s (CPU time, best of 20 runs) for the raw parse and for raw + typed instructions. Run by `bench/parse.sh`.

use std::time::{Duration, Instant};

use rbuild::dockerfile;

fn generate(instructions: usize) -> String {
    let mut out = String::from("# syntax=docker/dockerfile:1\nARG BASE=debian:bookworm\n");
    let mut n = 1;
    let mut i = 0;
    while n < instructions {
        let stage = i / 200;
        let text = match i % 20 {
            0 => format!("FROM ${{BASE}} AS stage{stage}\n"),
            1 => "# install the build dependencies\nRUN apt-get update \\\n    && apt-get install -y --no-install-recommends build-essential ca-certificates curl \\\n    && rm -rf /var/lib/apt/lists/*\n".to_string(),
            2 => format!("ENV APP_HOME=/srv/app{i} PATH=\"/srv/app/bin:$PATH\" LANG=C.UTF-8\n"),
            3 => format!("COPY --chown=app:app --chmod=0644 --link src/module{i}/ /srv/app/module{i}/\n"),
            4 => "RUN --mount=type=cache,target=/root/.cache/go-build,sharing=locked --network=none go build -o /out/app ./cmd/app\n".to_string(),
            5 => format!("LABEL org.opencontainers.image.title=\"app {i}\" org.opencontainers.image.version=1.{i}\n"),
            6 => "WORKDIR /srv/app\n".to_string(),
            7 => format!("ADD --checksum=sha256:0123456789abcdef https://example.com/releases/v{i}.tar.gz /tmp/\n"),
            8 => "CMD [\"/srv/app/bin/server\", \"--port\", \"8080\", \"--verbose\"]\n".to_string(),
            9 => format!("EXPOSE {}/tcp 9090\n", 8000 + i % 1000),
            10 => "USER app:app\n".to_string(),
            11 => format!("ARG VERSION{i}=1.2.3\n"),
            12 => "HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD curl -fsS http://localhost:8080/health || exit 1\n".to_string(),
            13 => "RUN <<EOF\nset -e\necho building\nmake -j4 all\nEOF\n".to_string(),
            14 => format!("COPY --from=stage{stage} /out/app /usr/local/bin/app{i}\n"),
            15 => "ENTRYPOINT [\"/usr/bin/tini\", \"--\"]\n".to_string(),
            16 => "VOLUME [\"/data\", \"/logs\"]\n".to_string(),
            17 => "SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n".to_string(),
            18 => format!("RUN echo 'step {i}' > /tmp/step && cat /tmp/step | tr a-z A-Z >> /tmp/log\n"),
            _ => "ONBUILD COPY . /srv/app/src\n".to_string(),
        };
        out.push_str(&text);
        if i % 20 != 0 || n > 0 {
            n += 1;
        }
        i += 1;
    }
    out
}

/// CPU time of this thread (Linux `/proc/thread-self/schedstat`), so that other processes
/// competing for the CPU do not distort the result; wall time where it is unavailable.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// The fastest of `runs` runs of `f`, in CPU time when available.
fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let (wall, cpu) = (Instant::now(), cpu_time());
            f();
            match (cpu, cpu_time()) {
                (Some(before), Some(after)) => after.saturating_sub(before),
                _ => wall.elapsed(),
            }
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let source = generate(count);
    if let Some(path) = std::env::args().nth(2) {
        std::fs::write(&path, &source).expect("write generated Dockerfile");
    }
    let df = dockerfile::parse(&source, "Dockerfile").expect("generated Dockerfile parses");
    dockerfile::instructions::parse_instructions(&df).expect("generated Dockerfile is valid");
    let mb = source.len() as f64 / 1e6;
    let raw = best_of(20, || {
        dockerfile::parse(&source, "Dockerfile").unwrap();
    });
    let typed = best_of(20, || {
        let df = dockerfile::parse(&source, "Dockerfile").unwrap();
        dockerfile::instructions::parse_instructions(&df).unwrap();
    });
    println!("instructions: {}  size: {:.2} MB", df.nodes.len(), mb);
    println!(
        "raw parse:          {:8.2} ms  {:7.1} MB/s",
        raw.as_secs_f64() * 1e3,
        mb / raw.as_secs_f64()
    );
    println!(
        "parse + typed:      {:8.2} ms  {:7.1} MB/s",
        typed.as_secs_f64() * 1e3,
        mb / typed.as_secs_f64()
    );
}

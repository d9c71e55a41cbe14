//! Any input must parse or fail with an error, never panic or hang; a parsed file must also
//! go through the typed step and the dump without panicking, and errors must render.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild::dockerfile;

fuzz_target!(|data: &[u8]| {
    // The bytes go through decode as a build's do (encoding errors are errors too).
    match dockerfile::decode(data.to_vec(), "Dockerfile")
        .and_then(|source| dockerfile::parse_owned(source, "Dockerfile"))
    {
        Ok(df) => {
            let _ = dockerfile::dump::dump(&df);
            match dockerfile::instructions::parse_instructions(&df) {
                Ok(_) => {}
                Err(err) => {
                    let _ = err.to_string();
                }
            }
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
});

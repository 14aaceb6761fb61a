//! Writing to stdout: a closed pipe (`miroirctl jobs | head -1`) ends the program quietly instead
//! of panicking.

use std::io::{ErrorKind, Write};

pub fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    if let Err(e) = written {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `text` and a newline.
pub fn line(text: &str) {
    print(&format!("{text}\n"));
}

/// A JSON value, pretty.
pub fn json(value: &serde_json::Value) {
    line(&serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

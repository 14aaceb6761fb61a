//! Command line: the subset of Meilisearch's flags that tests pass when they start a node.

use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub master_key: Option<String>,
}

/// Meilisearch flags that take a value and that this in-memory node accepts and ignores, so the
/// same command line can start either binary.
const IGNORED_WITH_VALUE: &[&str] = &[
    "--db-path",
    "--env",
    "--log-level",
    "--max-indexing-memory",
    "--max-indexing-threads",
    "--dump-dir",
    "--snapshot-dir",
    "--http-payload-size-limit",
    "--experimental-max-number-of-batched-tasks",
    "--experimental-allowed-ip-networks",
];

const IGNORED_FLAGS: &[&str] = &["--no-analytics", "--experimental-dumpless-upgrade"];

pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Config, String> {
    let mut http_addr: SocketAddr = ([127, 0, 0, 1], 7700).into();
    let mut master_key = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Both `--flag value` and `--flag=value` are accepted, like clap.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "--http-addr" => {
                let v = value("--http-addr")?;
                http_addr = v
                    .parse()
                    .map_err(|e| format!("invalid --http-addr `{v}`: {e}"))?;
            }
            "--master-key" => master_key = Some(value("--master-key")?).filter(|k| !k.is_empty()),
            "-h" | "--help" => return Err(usage()),
            f if IGNORED_WITH_VALUE.contains(&f) => {
                value(f)?;
            }
            f if IGNORED_FLAGS.contains(&f) => {}
            other => return Err(format!("unknown argument `{other}`\n{}", usage())),
        }
    }
    Ok(Config {
        http_addr,
        master_key,
    })
}

pub fn usage() -> String {
    "usage: miroir-test-node --http-addr HOST:PORT [--master-key KEY] [--db-path P] \
     [--no-analytics] [--env E] [--log-level L] [--max-indexing-threads N] [--max-indexing-memory M]"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_meilisearch_style_command_line() {
        let c = parse(args(
            "--db-path /tmp/x --http-addr 127.0.0.1:7801 --master-key abcdefghijklmnop \
             --env development --no-analytics --log-level WARN --max-indexing-threads 2",
        ))
        .unwrap();
        assert_eq!(c.http_addr, "127.0.0.1:7801".parse().unwrap());
        assert_eq!(c.master_key.as_deref(), Some("abcdefghijklmnop"));
    }

    #[test]
    fn rejects_unknown_flags_and_missing_values() {
        assert!(parse(args("--bogus")).is_err());
        assert!(parse(args("--http-addr")).is_err());
        assert_eq!(
            parse(args("--http-addr=127.0.0.1:1")).unwrap().master_key,
            None
        );
    }
}

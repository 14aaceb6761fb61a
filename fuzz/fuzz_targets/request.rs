//! One client request through `Exchange::start` on a scripted fleet, every call answered with
//! fuzzer-chosen bytes, until the exchange answers (it must, exactly once).
//!
//! Input: `<topology byte><order byte>` then NUL-separated sections:
//! `METHOD /path?query`, header lines, the body, then node replies. A reply is
//! `STATUS MATCH\nBODY`: it answers a call whose `METHOD /path` contains MATCH (`=MATCH`: is
//! exactly MATCH; empty: any call); `!` is a reset call. Calls nothing matches take the replies in
//! turn; with no reply at all, every call fails.
#![no_main]

use libfuzzer_sys::fuzz_target;
use miroir_filter::exchange::Exchange;
use miroir_filter::host::mock::MockHost;
use miroir_filter::host::{Call, Reply};
use miroir_filter::request::intake::refuse_oversized;
use miroir_filter::request::Request;
use miroir_filter::tasks::background::Background;
use miroir_fuzz::{headers, sections, text, topology};

/// More calls than any request makes: past it, the exchange is looping.
const MAX_CALLS: usize = 5_000;

struct Script<'a> {
    replies: Vec<(Option<u16>, &'a [u8], &'a [u8])>,
    turn: usize,
}

impl<'a> Script<'a> {
    fn new(parts: &[&'a [u8]]) -> Self {
        let replies = parts
            .iter()
            .map(|part| {
                let (head, body) = match part.iter().position(|b| *b == b'\n') {
                    Some(i) => (&part[..i], &part[i + 1..]),
                    None => (*part, &b""[..]),
                };
                if head.first() == Some(&b'!') {
                    return (None, &b""[..], &b""[..]);
                }
                let status = head
                    .get(..3)
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .and_then(|s| s.parse::<u16>().ok())
                    .unwrap_or(200);
                let matcher = head.get(4..).unwrap_or_default();
                (Some(status), matcher, body)
            })
            .collect();
        Script { replies, turn: 0 }
    }

    fn reply(&mut self, call: &Call) -> Reply {
        if self.replies.is_empty() {
            return Reply::Failed;
        }
        let path = call.path.split('?').next().unwrap_or_default();
        let target = format!("{} {}", call.method, path);
        let n = self.replies.len();
        let matched = (0..n).map(|i| (self.turn + i) % n).find(|i| {
            let matcher = self.replies[*i].1;
            !matcher.is_empty()
                && match matcher.strip_prefix(b"=") {
                    Some(exact) => exact == target.as_bytes(),
                    None => target
                        .as_bytes()
                        .windows(matcher.len())
                        .any(|w| w == matcher),
                }
        });
        let index = matched.unwrap_or(self.turn % n);
        self.turn += 1;
        match self.replies[index] {
            (None, _, _) => Reply::Failed,
            (Some(status), _, body) => Reply::Response {
                status,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.to_vec(),
            },
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (Some(&choice), Some(&order)) = (data.first(), data.get(1)) else {
        return;
    };
    let parts = sections(&data[2..]);
    let line = text(parts.first().copied().unwrap_or_default());
    let (method, path) = line.split_once(' ').unwrap_or(("GET", line.as_str()));
    let request = Request::new(
        method,
        path,
        headers(parts.get(1).copied().unwrap_or_default()),
        parts.get(2).map(|b| b.to_vec()).unwrap_or_default(),
    );
    let mut script = Script::new(parts.get(3..).unwrap_or_default());
    let config = topology(choice);
    let mut host = MockHost::default();
    if order & 4 != 0 {
        // The control plane was unreachable and this Envoy has no uid left.
        miroir_filter::tasks::set_control_plane_unreachable(&mut host, true);
    }
    if refuse_oversized(&config, request.body.len() as u64, &mut host) {
        assert_eq!(host.responses, 1);
        return;
    }
    let mut exchange = Exchange::start(config.clone(), request, u64::from(order >> 3), &mut host);
    let mut calls = 0;
    while !host.in_flight.is_empty() {
        calls += 1;
        assert!(calls <= MAX_CALLS, "the exchange keeps calling");
        // Newest first (out of order) or oldest first.
        let (token, call) = if order & 1 == 0 {
            host.in_flight.remove(0)
        } else {
            host.in_flight.pop().unwrap()
        };
        let reply = script.reply(&call);
        exchange.on_reply(token, reply, &mut host);
    }
    assert!(
        exchange.is_answered(),
        "no answer once every call was answered"
    );
    assert_eq!(host.responses, 1, "answered {} times", host.responses);

    // The background work the request left (task outbox, uid leases) against the same replies.
    if order & 2 != 0 && config.control_plane.is_some() {
        let mut background = Background::new("envoy-fuzz".into());
        for _ in 0..3 {
            background.tick(&config, &mut host);
            let mut calls = 0;
            while let Some((token, call)) = host.in_flight.pop() {
                calls += 1;
                assert!(calls <= MAX_CALLS, "the background keeps calling");
                let reply = script.reply(&call);
                background.on_reply(token, reply, &mut host);
            }
        }
    }
});

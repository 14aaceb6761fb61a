//! Compressed request bodies (`Content-Encoding: gzip`, `deflate`, `br`), decoded as Meilisearch
//! decodes them (actix-http's `Decoder`, the same crates fed the same way), before anything reads
//! the body: the filter parses documents to shard them, so it must see them decoded.
//!
//! What Meilisearch does, and so what this does:
//! - the first `content-encoding` value, trimmed, compared without case: `gzip` (gzip framing),
//!   `deflate` (zlib framing, as HTTP says, not raw deflate), `br`; anything else (`identity`,
//!   `zstd`, which its build leaves out, `gzip, br`, unknown names) leaves the body as it is, for
//!   the route to refuse as malformed;
//! - the decoder runs even over an empty body (an empty gzip body is an error, empty `deflate`
//!   and `br` bodies are empty);
//! - a body that does not decode is 400 `bad_request`: on `POST`/`PUT /indexes/{uid}/documents`
//!   (its payload extractor) "The provided payload is incomplete and cannot be parsed"; on the
//!   routes reading JSON, actix's "Error that occur during reading payload: payload reached EOF
//!   before completing: Some(<the decoder's io::Error>)";
//! - the payload limit counts decoded bytes: 413 `payload_too_large` once the decoded body is
//!   past it (decoding stops there, so a small bomb never fills the VM).
//!
//! Only `POST`, `PUT` and `PATCH` bodies are decoded: no Meilisearch route reads another's.

use std::io::{self, Write};

use miroir_topology::limits::PAYLOAD_LIMIT_BYTES;

use crate::error::MeiliError;
use crate::request::Request;

/// A body encoding Meilisearch decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    Deflate,
    Brotli,
}

/// The encoding of `request`'s body that must be undone, if any.
pub fn of(request: &Request) -> Option<Encoding> {
    if !matches!(request.method.as_str(), "POST" | "PUT" | "PATCH") {
        return None;
    }
    let value = request.header("content-encoding")?.trim();
    if value.eq_ignore_ascii_case("gzip") {
        Some(Encoding::Gzip)
    } else if value.eq_ignore_ascii_case("deflate") {
        Some(Encoding::Deflate)
    } else if value.eq_ignore_ascii_case("br") {
        Some(Encoding::Brotli)
    } else {
        None
    }
}

/// Which of Meilisearch's extractors reads the body, for the words of a decoding error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// `POST`/`PUT /indexes/{uid}/documents`: Meilisearch's own payload stream.
    Documents,
    /// Every other route: actix's JSON extractor.
    Json,
}

/// Decodes `request`'s body in place (and drops its `content-encoding`); untouched when it is
/// not encoded. `Err` is the answer Meilisearch gives.
pub fn decode(request: &mut Request, reader: Reader) -> Result<(), MeiliError> {
    let Some(encoding) = of(request) else {
        return Ok(());
    };
    let body = std::mem::take(&mut request.body);
    let decoded = decode_bytes(encoding, &body, PAYLOAD_LIMIT_BYTES);
    drop(body);
    match decoded {
        Ok(bytes) => {
            request.body = bytes;
            request.headers.retain(|(k, _)| k != "content-encoding");
            Ok(())
        }
        Err(Failure::TooLarge) => Err(MeiliError::payload_too_large(PAYLOAD_LIMIT_BYTES)),
        Err(Failure::Corrupt(e)) => Err(corrupt(reader, &e)),
    }
}

fn corrupt(reader: Reader, error: &io::Error) -> MeiliError {
    let message = match reader {
        Reader::Documents => "The provided payload is incomplete and cannot be parsed".to_string(),
        // actix's `PayloadError::Incomplete(Some(e))` in its `JsonPayloadError::Payload`.
        Reader::Json => format!(
            "Error that occur during reading payload: payload reached EOF before completing: {:?}",
            Some(error)
        ),
    };
    MeiliError::bad_request("bad_request", message)
}

#[derive(Debug)]
pub enum Failure {
    /// Decoded past the limit.
    TooLarge,
    /// The decoder's error, as actix-http's decoder would have returned it.
    Corrupt(io::Error),
}

/// Decodes `body`, stopping once more than `limit` bytes came out. The decoders are fed as
/// actix-http feeds them (`write_all`, `flush`, then `try_finish` for gzip and deflate and a
/// last `flush` for brotli, which so ignores a truncated stream), so their errors are the ones
/// Meilisearch words. A stream cut short ends as flate2 1.1.9 (Meilisearch 1.50's) ends it:
/// later versions call both cuts "incomplete deflate stream"; 1.1.9 refuses a gzip one with
/// the checksum error and gives a zlib one's bytes so far.
pub fn decode_bytes(encoding: Encoding, body: &[u8], limit: u64) -> Result<Vec<u8>, Failure> {
    let out = Capped::new(limit);
    match encoding {
        Encoding::Gzip => {
            let mut decoder = flate2::write::GzDecoder::new(out);
            let fed = feed(&mut decoder, body).and_then(|()| {
                decoder.try_finish().map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "corrupt gzip stream does not have a matching checksum",
                    ),
                    _ => e,
                })
            });
            finish(fed, decoder.get_mut())
        }
        Encoding::Deflate => {
            let mut decoder = flate2::write::ZlibDecoder::new(out);
            let fed = feed(&mut decoder, body).and_then(|()| match decoder.try_finish() {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(()),
                other => other,
            });
            finish(fed, decoder.get_mut())
        }
        Encoding::Brotli => {
            let mut decoder = brotli_decompressor::DecompressorWriter::new(out, 8_096);
            let fed = feed(&mut decoder, body).and_then(|()| decoder.flush());
            finish(fed, decoder.get_mut())
        }
    }
}

/// Bodies arrive in parts; actix decodes each as it comes. The parts' size does not change what
/// comes out or which error a corrupt stream gives.
const PART: usize = 64 * 1024;

fn feed(decoder: &mut impl Write, body: &[u8]) -> io::Result<()> {
    for part in body.chunks(PART) {
        decoder.write_all(part)?;
        decoder.flush()?;
    }
    Ok(())
}

fn finish(fed: io::Result<()>, out: &mut Capped) -> Result<Vec<u8>, Failure> {
    if out.over {
        return Err(Failure::TooLarge);
    }
    match fed {
        Ok(()) => Ok(std::mem::take(&mut out.bytes)),
        Err(e) => Err(Failure::Corrupt(e)),
    }
}

/// The decoded bytes, refusing to grow past the limit.
struct Capped {
    bytes: Vec<u8>,
    limit: u64,
    over: bool,
}

impl Capped {
    fn new(limit: u64) -> Capped {
        Capped {
            bytes: Vec::new(),
            limit,
            over: false,
        }
    }
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let total = (self.bytes.len() as u64).saturating_add(buf.len() as u64);
        if total > self.limit {
            self.over = true;
            return Err(io::Error::other("decoded body past the payload limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).unwrap();
        }
        out
    }

    fn request(method: &str, encoding: &str, body: Vec<u8>) -> Request {
        Request::new(
            method,
            "/indexes/movies/documents",
            vec![
                ("content-type".into(), "application/json".into()),
                ("Content-Encoding".into(), encoding.into()),
            ],
            body,
        )
    }

    const DOCS: &[u8] = br#"[{"id":1,"title":"Carol"}]"#;

    #[test]
    fn gzip_deflate_and_brotli_bodies_are_decoded() {
        for (name, body) in [
            ("gzip", gzip(DOCS)),
            ("GZIP", gzip(DOCS)),
            (" deflate ", zlib(DOCS)),
            ("br", brotli(DOCS)),
            ("Br", brotli(DOCS)),
        ] {
            let mut r = request("POST", name, body);
            decode(&mut r, Reader::Documents).unwrap();
            assert_eq!(r.body, DOCS, "{name}");
            assert_eq!(r.header("content-encoding"), None, "{name}");
        }
        // A large body comes out whole, over many parts.
        let big: Vec<u8> = (0..400_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for encoding in [Encoding::Gzip, Encoding::Deflate, Encoding::Brotli] {
            let encoded = match encoding {
                Encoding::Gzip => gzip(&big),
                Encoding::Deflate => zlib(&big),
                Encoding::Brotli => brotli(&big),
            };
            assert_eq!(
                decode_bytes(encoding, &encoded, PAYLOAD_LIMIT_BYTES).unwrap(),
                big
            );
        }
    }

    #[test]
    fn other_encodings_and_other_methods_are_left_alone() {
        let gz = gzip(DOCS);
        for name in ["identity", "zstd", "gzip, br", "x-gzip", ""] {
            let mut r = request("POST", name, gz.clone());
            decode(&mut r, Reader::Documents).unwrap();
            assert_eq!(r.body, gz, "{name:?}");
        }
        for method in ["GET", "DELETE", "OPTIONS"] {
            let mut r = request(method, "gzip", b"not gzip".to_vec());
            decode(&mut r, Reader::Json).unwrap();
            assert_eq!(r.body, b"not gzip");
        }
    }

    /// The words Meilisearch 1.50 answers (recorded from the real binary).
    #[test]
    fn a_corrupt_body_is_refused_in_meilisearchs_words() {
        let garbage = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbagegarbage".to_vec();
        let documents = decode(
            &mut request("POST", "gzip", garbage.clone()),
            Reader::Documents,
        )
        .unwrap_err();
        assert_eq!(
            (documents.status, documents.code, documents.message.as_str()),
            (
                400,
                "bad_request",
                "The provided payload is incomplete and cannot be parsed"
            )
        );
        let json = decode(&mut request("POST", "gzip", garbage), Reader::Json).unwrap_err();
        assert_eq!(
            json.message,
            "Error that occur during reading payload: payload reached EOF before completing: Some(Custom { kind: InvalidInput, error: \"corrupt deflate stream\" })"
        );
        let truncated = gzip(br#"{"q":"carol"}"#)[..20].to_vec();
        let e = decode(&mut request("POST", "gzip", truncated), Reader::Json).unwrap_err();
        assert_eq!(
            e.message,
            "Error that occur during reading payload: payload reached EOF before completing: Some(Custom { kind: InvalidInput, error: \"corrupt gzip stream does not have a matching checksum\" })"
        );
        let e = decode(
            &mut request("POST", "br", b"garbage-not-brotli-at-all".to_vec()),
            Reader::Json,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "Error that occur during reading payload: payload reached EOF before completing: Some(Custom { kind: InvalidData, error: \"Invalid Data\" })"
        );
        let e = decode(
            &mut request("POST", "deflate", b"x\x9cgarbage".to_vec()),
            Reader::Json,
        )
        .unwrap_err();
        assert!(
            e.message.contains("corrupt deflate stream"),
            "{}",
            e.message
        );
        // Trailing bytes after the gzip stream.
        let mut trailing = gzip(br#"{"q":"carol"}"#);
        trailing.extend_from_slice(b"garbage\n");
        let e = decode(&mut request("POST", "gzip", trailing), Reader::Json).unwrap_err();
        assert_eq!(
            e.message,
            "Error that occur during reading payload: payload reached EOF before completing: Some(Error { kind: WriteZero, message: \"failed to write whole buffer\" })"
        );
    }

    #[test]
    fn empty_bodies_decode_as_meilisearch_decodes_them() {
        // An empty gzip stream has no header: an error. Empty deflate and br bodies are empty,
        // for the route to call missing.
        assert!(decode(&mut request("POST", "gzip", Vec::new()), Reader::Documents).is_err());
        for name in ["deflate", "br"] {
            let mut r = request("POST", name, Vec::new());
            decode(&mut r, Reader::Json).unwrap();
            assert!(r.body.is_empty());
        }
        // Truncated brotli and zlib streams give what they had (Meilisearch then finds the JSON
        // cut); a truncated gzip one is refused.
        for (name, cut) in [
            ("br", brotli(DOCS)[..10].to_vec()),
            ("deflate", zlib(DOCS)[..12].to_vec()),
        ] {
            let mut r = request("POST", name, cut);
            decode(&mut r, Reader::Json).unwrap();
            assert!(DOCS.starts_with(&r.body), "{name}");
        }
        assert!(decode(
            &mut request("POST", "gzip", gzip(DOCS)[..12].to_vec()),
            Reader::Json
        )
        .is_err());
    }

    #[test]
    fn decoding_stops_at_the_payload_limit() {
        let bomb = gzip(&vec![b' '; 200_000]);
        assert!(bomb.len() < 1_000);
        assert!(matches!(
            decode_bytes(Encoding::Gzip, &bomb, 100_000),
            Err(Failure::TooLarge)
        ));
        assert_eq!(
            decode_bytes(Encoding::Gzip, &bomb, 200_000).unwrap().len(),
            200_000
        );
        let brotli_bomb = brotli(&vec![b' '; 200_000]);
        assert!(matches!(
            decode_bytes(Encoding::Brotli, &brotli_bomb, 100_000),
            Err(Failure::TooLarge)
        ));
    }
}

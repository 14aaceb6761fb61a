//! Gzip framing (RFC 1952) around deflate *stored* blocks (RFC 1951 §3.2.4): what Meilisearch
//! sends its webhooks is gzip-encoded, and any gzip reader inflates stored blocks. The payload is
//! a few task objects, so not compressing it costs little and needs no compression crate.

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as gzip's trailer carries it.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

pub fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, b| {
        CRC_TABLE[((c ^ u32::from(*b)) & 0xFF) as usize] ^ (c >> 8)
    })
}

/// Largest stored block.
const BLOCK: usize = 65_535;

/// `data` as a gzip member.
pub fn encode(data: &[u8]) -> Vec<u8> {
    let blocks = data.len().div_ceil(BLOCK).max(1);
    let mut out = Vec::with_capacity(data.len() + blocks * 5 + 18);
    // Magic, deflate, no flags, no mtime, no extra flags, unknown OS.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let mut chunks = data.chunks(BLOCK).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = chunk.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Reads back what [`encode`] wrote (stored blocks only), checking the trailer.
#[cfg(test)]
pub fn decode(gz: &[u8]) -> Option<Vec<u8>> {
    if gz.get(..4)? != [0x1f, 0x8b, 8, 0] {
        return None;
    }
    let mut at = 10;
    let mut out = Vec::new();
    loop {
        let header = *gz.get(at)?;
        if header & 0b110 != 0 {
            return None; // not a stored block
        }
        let len = u16::from_le_bytes([*gz.get(at + 1)?, *gz.get(at + 2)?]);
        let nlen = u16::from_le_bytes([*gz.get(at + 3)?, *gz.get(at + 4)?]);
        if nlen != !len {
            return None;
        }
        at += 5;
        out.extend_from_slice(gz.get(at..at + usize::from(len))?);
        at += usize::from(len);
        if header & 1 == 1 {
            break;
        }
    }
    let trailer = gz.get(at..at + 8)?;
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    (crc == crc32(&out) && size == out.len() as u32 && gz.len() == at + 8).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_known_answer() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn round_trips_across_block_boundaries() {
        for n in [0, 1, 100, BLOCK, BLOCK + 1, 3 * BLOCK + 7] {
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            assert_eq!(decode(&encode(&data)), Some(data), "{n} bytes");
        }
    }

    /// The system's gzip (when installed) reads it: the framing is standard, not just ours.
    #[test]
    fn gzip_reads_it() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let Ok(mut child) = Command::new("gzip")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        else {
            return;
        };
        let data = b"{\"uid\":1}\n{\"uid\":2}\n".repeat(5000);
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&encode(&data)).expect("write");
        }
        let output = child.wait_with_output().expect("gzip");
        assert!(output.status.success());
        assert_eq!(output.stdout, data);
    }
}

//! The answer of an http-01 responder (RFC 8555 8.3), parsed from the bytes read off the
//! connection. Everything here comes from whoever controls the validated name, so it is parsed
//! as bytes, with every length checked: no assumption that it is text, or well formed.

/// Why an answer does not carry a key authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The status line names another status than 200 (or none).
    Status(String),
    /// The answer cannot be parsed as HTTP/1.1.
    Malformed(String),
}

/// The largest chunk size accepted in a chunked body: more than any response read allows.
const MAX_CHUNK: usize = 1 << 20;

/// The body of a `200` answer, with chunked transfer coding removed.
pub fn body(raw: &[u8]) -> Result<Vec<u8>, Refusal> {
    let (head, body) = match find(raw, b"\r\n\r\n") {
        Some(at) => (&raw[..at], &raw[at + 4..]),
        None => (raw, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n').map(trim_cr);
    let status = lines
        .next()
        .and_then(|line| line.split(|&b| b == b' ').filter(|w| !w.is_empty()).nth(1))
        .unwrap_or_default();
    if status != b"200" {
        return Err(Refusal::Status(
            String::from_utf8_lossy(status).into_owned(),
        ));
    }
    let chunked = lines.any(|line| {
        let compact: Vec<u8> = line
            .iter()
            .filter(|b| !b.is_ascii_whitespace())
            .map(u8::to_ascii_lowercase)
            .collect();
        compact.starts_with(b"transfer-encoding:chunked")
    });
    if chunked {
        dechunk(body)
    } else {
        Ok(body.to_vec())
    }
}

/// Joins the chunks of a chunked body (RFC 9112 7.1), up to the last chunk or the end of the
/// bytes read; a size that is not hex or overruns what was read is malformed.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::new();
    while let Some(end) = find(rest, b"\r\n") {
        let size_field = rest[..end]
            .split(|&b| b == b';')
            .next()
            .map(<[u8]>::trim_ascii)
            .unwrap_or_default();
        let size = std::str::from_utf8(size_field)
            .ok()
            .and_then(|text| usize::from_str_radix(text, 16).ok())
            .filter(|&size| size <= MAX_CHUNK)
            .ok_or_else(|| {
                Refusal::Malformed(format!(
                    "chunk size {:?} is not a hexadecimal size",
                    String::from_utf8_lossy(size_field)
                ))
            })?;
        let data = &rest[end + 2..];
        if size == 0 {
            break;
        }
        let chunk = data.get(..size).ok_or_else(|| {
            Refusal::Malformed(format!(
                "a chunk of {size} bytes is cut short after {} bytes",
                data.len()
            ))
        })?;
        out.extend_from_slice(chunk);
        rest = data[size..].strip_prefix(b"\r\n").ok_or_else(|| {
            Refusal::Malformed(format!("a chunk of {size} bytes is not followed by CRLF"))
        })?;
    }
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_bodies() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(body(plain).unwrap(), b"abc");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(body(chunked).unwrap(), b"abcde");
    }

    #[test]
    fn a_multibyte_character_across_a_chunk_size_is_bytes_not_a_panic() {
        // A size of one byte, the first of the two of "é": slicing a str there once panicked
        // the validation task and left the challenge `processing`.
        let answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\né\r\n0\r\n\r\n";
        assert!(
            matches!(body(answer.as_bytes()), Err(Refusal::Malformed(m)) if m.contains("not followed by CRLF"))
        );
        let two = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\né\r\n0\r\n\r\n";
        assert_eq!(body(two.as_bytes()).unwrap(), "é".as_bytes());
    }

    #[test]
    fn bad_answers_are_refused_with_their_reason() {
        assert_eq!(
            body(b"HTTP/1.1 404 Not Found\r\n\r\nno"),
            Err(Refusal::Status("404".into()))
        );
        assert_eq!(body(b""), Err(Refusal::Status(String::new())));
        assert_eq!(body(b"\xff\xfe"), Err(Refusal::Status(String::new())));
        let bad_size = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n";
        assert!(matches!(body(bad_size), Err(Refusal::Malformed(m)) if m.contains("\"zz\"")));
        let short = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nabc";
        assert!(matches!(body(short), Err(Refusal::Malformed(m)) if m.contains("cut short")));
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n";
        assert!(matches!(body(huge), Err(Refusal::Malformed(_))));
    }
}

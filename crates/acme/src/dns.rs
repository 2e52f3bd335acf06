//! A minimal DNS client (RFC 1035) for the one question dns-01 asks: the TXT records of a name,
//! over UDP, from one configured server. Answers are parsed defensively: anything that does not
//! fit is an error, never a panic.

use std::net::SocketAddr;
use std::time::Duration;

const TYPE_TXT: u16 = 16;
const CLASS_IN: u16 = 1;
const TIMEOUT: Duration = Duration::from_secs(5);

/// The TXT strings of `name` (each record's character-strings joined).
pub async fn query_txt(server: SocketAddr, name: &str) -> Result<Vec<String>, String> {
    let id: u16 = {
        let mut bytes = [0u8; 2];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no randomness".to_string())?;
        u16::from_be_bytes(bytes)
    };
    let query = build_query(id, name)?;
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().map_err(|_| "bind address")?
    } else {
        "[::]:0".parse().map_err(|_| "bind address")?
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    socket.send(&query).await.map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; 4096];
    let n = tokio::time::timeout(TIMEOUT, socket.recv(&mut buffer))
        .await
        .map_err(|_| format!("no answer within {TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    parse_txt_answer(id, &buffer[..n])
}

fn build_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(32 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // recursion desired
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a DNS name"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&TYPE_TXT.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or("truncated answer")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Skips a (possibly compressed) name.
    fn skip_name(&mut self) -> Result<(), String> {
        loop {
            let len = self.take(1)?[0];
            match len {
                0 => return Ok(()),
                l if l & 0xc0 == 0xc0 => {
                    self.take(1)?;
                    return Ok(());
                }
                l => {
                    self.take(usize::from(l))?;
                }
            }
        }
    }
}

/// The TXT strings of the DNS answer `bytes` to query `id` (none for NXDOMAIN); anything
/// malformed is an error, never a panic: the answer comes from the network.
pub fn parse_txt_answer(id: u16, bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.u16()? != id {
        return Err("answer for another query".into());
    }
    let flags = r.u16()?;
    let rcode = flags & 0x000f;
    let questions = r.u16()?;
    let answers = r.u16()?;
    r.u16()?;
    r.u16()?;
    match rcode {
        0 => {}
        3 => return Ok(Vec::new()),
        code => return Err(format!("server answered rcode {code}")),
    }
    for _ in 0..questions {
        r.skip_name()?;
        r.take(4)?;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        r.skip_name()?;
        let kind = r.u16()?;
        r.u16()?;
        r.take(4)?;
        let len = usize::from(r.u16()?);
        let data = r.take(len)?;
        if kind != TYPE_TXT {
            continue;
        }
        let mut text = String::new();
        let mut d = Reader { bytes: data, at: 0 };
        while d.at < data.len() {
            let n = usize::from(d.take(1)?[0]);
            text.push_str(&String::from_utf8_lossy(d.take(n)?));
        }
        out.push(text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_and_garbage_is_an_error() {
        let query = build_query(7, "_acme-challenge.example.com").unwrap();
        let mut answer = query.clone();
        answer[2] = 0x81;
        answer[3] = 0x80;
        answer[7] = 1; // one answer
        answer.extend_from_slice(&[
            0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60, 0, 4, 3, b'a', b'b', b'c',
        ]);
        assert_eq!(parse_txt_answer(7, &answer).unwrap(), vec!["abc"]);
        assert!(parse_txt_answer(8, &answer).is_err());
        assert!(parse_txt_answer(7, &answer[..answer.len() - 2]).is_err());
        assert!(parse_txt_answer(7, &[0, 7]).is_err());
        assert!(build_query(1, "a..b").is_err());
    }
}

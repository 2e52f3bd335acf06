//! dns-01 answers: a UDP datagram from the configured resolver, parsed for TXT records.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = data
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    if let Ok(texts) = mayfly_acme::dns::parse_txt_answer(id, data) {
        assert!(texts.iter().map(String::len).sum::<usize>() <= data.len() * 4);
    }
});

#![no_main]
//! Header parsing, the invariant peek, and header-protection removal on
//! arbitrary bytes: errors are fine, panics are not.

use libfuzzer_sys::fuzz_target;
use tarte::crypto::DirectionalKeys;
use tarte::packet;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let dcid_len = usize::from(data[0] % 21);
    let mut buf = data[1..].to_vec();
    let _ = packet::peek(&buf, dcid_len);
    if let Ok(hdr) = tarte::Header::from_slice(&mut buf, dcid_len) {
        let _ = format!("{hdr:?}");
    }
    // Try to unprotect as an Initial of a fixed DCID at every plausible
    // packet-number offset.
    if let Ok(keys) = DirectionalKeys::initial(b"\x83\x94\xc8\xf0\x3e\x51\x57\x08", true) {
        let pn_off = usize::from(data[0]) % 64;
        let mut copy = data.to_vec();
        let _ = packet::unprotect(&mut copy, pn_off, Some(u64::from(data[0])), &keys);
    }
    let _ = packet::verify_retry(&data[..data.len().min(20)], data);
});

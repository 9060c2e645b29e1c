#![no_main]
//! Transport parameter decoding from both roles; whatever decodes must
//! re-encode and decode to the same parameters.

use libfuzzer_sys::fuzz_target;
use tarte::transport_params::TransportParams;

fuzz_target!(|data: &[u8]| {
    for is_server in [false, true] {
        if let Ok(tp) = TransportParams::decode(data, is_server) {
            let mut out = vec![0u8; 4096];
            let n = tp.encode(!is_server, false, &mut out).expect("encodes");
            let back = TransportParams::decode(&out[..n], is_server).expect("decodes again");
            assert_eq!(back, tp);
        }
    }
});

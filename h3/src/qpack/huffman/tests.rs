use super::*;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

// RFC 7541 Appendix C.4 (requests) and C.6 (responses), Huffman-coded
// string literals, byte for byte.
const VECTORS: &[(&str, &str)] = &[
    ("www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
    ("no-cache", "a8eb 1064 9cbf"),
    ("custom-key", "25a8 49e9 5ba9 7d7f"),
    ("custom-value", "25a8 49e9 5bb8 e8b4 bf"),
    ("302", "6402"),
    ("private", "aec3 771a 4b"),
    (
        "Mon, 21 Oct 2013 20:13:21 GMT",
        "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
    ),
    (
        "Mon, 21 Oct 2013 20:13:22 GMT",
        "d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff",
    ),
    (
        "https://www.example.com",
        "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
    ),
    ("gzip", "9bd9 ab"),
    (
        "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
        "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 \
         3160 65c0 03ed 4ee5 b106 3d50 07",
    ),
];

#[test]
fn rfc7541_examples_encode() {
    for (plain, coded) in VECTORS {
        let mut out = vec![0xa5; 3];
        encode(plain.as_bytes(), &mut out);
        assert_eq!(&out[..3], &[0xa5; 3]);
        assert_eq!(hex::encode(&out[3..]), hex::encode(unhex(coded)), "{plain}");
        assert_eq!(encoded_len(plain.as_bytes()), unhex(coded).len(), "{plain}");
    }
}

#[test]
fn rfc7541_examples_decode() {
    for (plain, coded) in VECTORS {
        let mut out = Vec::new();
        decode(&unhex(coded), &mut out).unwrap();
        assert_eq!(out, plain.as_bytes());
    }
}

#[test]
fn every_byte_round_trips() {
    let all: Vec<u8> = (0..=255u8).collect();
    let mut coded = Vec::new();
    encode(&all, &mut coded);
    let mut back = Vec::new();
    decode(&coded, &mut back).unwrap();
    assert_eq!(back, all);
    // Each single symbol alone too: exercises every padding length.
    for b in 0..=255u8 {
        let mut c = Vec::new();
        encode(&[b], &mut c);
        let mut d = Vec::new();
        decode(&c, &mut d).unwrap();
        assert_eq!(d, [b]);
    }
}

#[test]
fn empty_string() {
    let mut out = Vec::new();
    encode(b"", &mut out);
    assert!(out.is_empty());
    decode(b"", &mut out).unwrap();
    assert!(out.is_empty());
}

#[test]
fn eos_in_string_is_rejected() {
    // EOS is 30 ones; four 0xff bytes contain it completely.
    let mut out = Vec::new();
    assert_eq!(
        decode(&[0xff, 0xff, 0xff, 0xff], &mut out),
        Err(HuffmanError::EosInString)
    );
    // 'a' (00011, 5 bits) then EOS (30 ones) then 5 bits of padding.
    let mut bits: u64 = 0b00011;
    bits = (bits << 30) | 0x3fff_ffff;
    bits = (bits << 5) | 0b11111;
    let bytes = bits.to_be_bytes();
    assert_eq!(
        decode(&bytes[3..], &mut out),
        Err(HuffmanError::EosInString)
    );
}

#[test]
fn padding_longer_than_seven_bits_is_rejected() {
    // "0" is 00000 (5 bits): 00000111 is valid (3 bits of padding) ...
    let mut out = Vec::new();
    decode(&[0x07], &mut out).unwrap();
    assert_eq!(out, b"0");
    // ... but a whole extra byte of ones is 11 bits of padding.
    out.clear();
    assert_eq!(
        decode(&[0x07, 0xff], &mut out),
        Err(HuffmanError::BadPadding)
    );
    // A lone 0xff is 8 bits of padding.
    assert_eq!(decode(&[0xff], &mut out), Err(HuffmanError::BadPadding));
}

#[test]
fn padding_not_all_ones_is_rejected() {
    // "0" then padding 110 instead of 111.
    let mut out = Vec::new();
    assert_eq!(decode(&[0x06], &mut out), Err(HuffmanError::BadPadding));
    // "0" then "0" then 6 bits 000000: an unfinished code, not padding.
    assert_eq!(
        decode(&[0x00, 0x00], &mut out),
        Err(HuffmanError::BadPadding)
    );
}

//! Packet protection (RFC 9001 §5) by BoringSSL: HKDF key schedule, AEAD,
//! header protection, Initial secrets, key update and the Retry integrity
//! tag. Sealing and opening work in place and allocate nothing per packet.
#![allow(unsafe_code)]

use boring::aead::{AeadCtx, Algorithm as BoringAead};
use boring::hash::MessageDigest;
use boring::hkdf::HkdfSuite;
use boring_sys as ffi;
use foreign_types::ForeignTypeRef;

use crate::error::{Error, Result};

/// Length of the AEAD authentication tag for every QUIC cipher suite.
pub const TAG_LEN: usize = 16;

/// Length of the header-protection sample (RFC 9001 §5.4.2).
pub const HP_SAMPLE_LEN: usize = 16;

/// Length of the AEAD nonce / packet IV.
pub const NONCE_LEN: usize = 12;

/// The longest secret any supported suite uses (SHA-384).
pub const MAX_SECRET_LEN: usize = 48;

/// Initial salt for QUIC version 1 (RFC 9001 §5.2).
const INITIAL_SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];

/// Retry integrity key and nonce for QUIC version 1 (RFC 9001 §5.8).
const RETRY_KEY_V1: [u8; 16] = [
    0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e,
];
const RETRY_NONCE_V1: [u8; NONCE_LEN] = [
    0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb,
];

/// A QUIC packet-protection algorithm: the AEAD of a TLS 1.3 cipher suite
/// with its header-protection cipher and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// TLS_AES_128_GCM_SHA256.
    Aes128Gcm,
    /// TLS_AES_256_GCM_SHA384.
    Aes256Gcm,
    /// TLS_CHACHA20_POLY1305_SHA256.
    ChaCha20Poly1305,
}

impl Algorithm {
    /// The algorithm of a TLS 1.3 cipher suite by its IANA value.
    pub fn from_tls_cipher_suite(id: u16) -> Option<Self> {
        match id {
            0x1301 => Some(Algorithm::Aes128Gcm),
            0x1302 => Some(Algorithm::Aes256Gcm),
            0x1303 => Some(Algorithm::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// AEAD key length.
    pub const fn key_len(self) -> usize {
        match self {
            Algorithm::Aes128Gcm => 16,
            Algorithm::Aes256Gcm | Algorithm::ChaCha20Poly1305 => 32,
        }
    }

    /// Header-protection key length.
    pub const fn hp_key_len(self) -> usize {
        self.key_len()
    }

    /// Length of the traffic secret (the suite's hash output).
    pub const fn secret_len(self) -> usize {
        match self {
            Algorithm::Aes256Gcm => 48,
            _ => 32,
        }
    }

    fn digest(self) -> MessageDigest {
        match self {
            Algorithm::Aes256Gcm => MessageDigest::sha384(),
            _ => MessageDigest::sha256(),
        }
    }

    fn aead(self) -> BoringAead {
        match self {
            Algorithm::Aes128Gcm => BoringAead::aes_128_gcm(),
            Algorithm::Aes256Gcm => BoringAead::aes_256_gcm(),
            Algorithm::ChaCha20Poly1305 => BoringAead::chacha20_poly1305(),
        }
    }

    /// Confidentiality limit: packets that may be sealed with one key
    /// (RFC 9001 §6.6).
    pub const fn confidentiality_limit(self) -> u64 {
        match self {
            Algorithm::ChaCha20Poly1305 => u64::MAX,
            _ => 1 << 23,
        }
    }

    /// Integrity limit: failed openings tolerated with one key
    /// (RFC 9001 §6.6).
    pub const fn integrity_limit(self) -> u64 {
        match self {
            Algorithm::ChaCha20Poly1305 => 1 << 36,
            _ => 1 << 52,
        }
    }
}

/// The HkdfLabel structure (RFC 8446 §7.1) for `label` with an empty
/// context and an output of `out_len` bytes; returns it and its length.
fn hkdf_label(label: &[u8], out_len: usize) -> Result<([u8; 2 + 1 + 255 + 1], usize)> {
    const PREFIX: &[u8] = b"tls13 ";
    let mut info = [0u8; 2 + 1 + 255 + 1];
    let label_len = PREFIX.len() + label.len();
    let out_len = u16::try_from(out_len).map_err(|_| Error::CryptoFail)?;
    if label_len > 255 {
        return Err(Error::CryptoFail);
    }
    info[..2].copy_from_slice(&out_len.to_be_bytes());
    info[2] = label_len as u8;
    info[3..3 + PREFIX.len()].copy_from_slice(PREFIX);
    info[3 + PREFIX.len()..3 + label_len].copy_from_slice(label);
    // Zero-length context.
    info[3 + label_len] = 0;
    Ok((info, 4 + label_len))
}

/// HKDF-Expand-Label from TLS 1.3 (RFC 8446 §7.1) with an empty context,
/// as QUIC uses it (RFC 9001 §5.1).
pub fn hkdf_expand_label(
    alg: Algorithm,
    secret: &[u8],
    label: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let (info, n) = hkdf_label(label, out.len())?;
    HkdfSuite::new(alg.digest())
        .expand(secret, &info[..n], out)
        .map_err(|_| Error::CryptoFail)
}

/// HKDF-Expand-Label (empty context) of one secret for several labels,
/// each output at most one hash long (QUIC's keys, IVs, header-protection
/// keys and next secrets: RFC 9001 §5.1, §6.1). The secret's HMAC key
/// schedule (the ipad/opad blocks) is computed once and rewound for each
/// label, where [`hkdf_expand_label`] keys HMAC again every time; a
/// handshake derives some fifteen values per side this way.
pub fn hkdf_expand_labels(
    alg: Algorithm,
    secret: &[u8],
    outs: &mut [(&[u8], &mut [u8])],
) -> Result<()> {
    let md = alg.digest();
    let hash_len = md.size();
    // SAFETY (whole block): `ctx` is a local HMAC_CTX that is initialised
    // before use, never moved while in use, and cleaned up on every path;
    // every pointer passed comes from a live slice with its length, and
    // `t` has room for any digest (EVP_MAX_MD_SIZE is 64).
    unsafe {
        let mut ctx: ffi::HMAC_CTX = std::mem::zeroed();
        ffi::HMAC_CTX_init(&mut ctx);
        let mut ok = ffi::HMAC_Init_ex(
            &mut ctx,
            secret.as_ptr().cast(),
            secret.len(),
            md.as_ptr(),
            std::ptr::null_mut(),
        ) == 1;
        for (label, out) in outs.iter_mut() {
            if !ok {
                break;
            }
            let Ok((info, n)) = hkdf_label(label, out.len()) else {
                ok = false;
                break;
            };
            if out.len() > hash_len {
                ok = false;
                break;
            }
            // T(1) = HMAC(secret, info || 0x01) (RFC 5869 §2.3); a null key
            // with the same digest rewinds to the keyed state.
            let mut t = [0u8; 64];
            let mut t_len: std::os::raw::c_uint = 0;
            ok = ffi::HMAC_Init_ex(
                &mut ctx,
                std::ptr::null(),
                0,
                std::ptr::null(),
                std::ptr::null_mut(),
            ) == 1
                && ffi::HMAC_Update(&mut ctx, info.as_ptr(), n) == 1
                && ffi::HMAC_Update(&mut ctx, [1u8].as_ptr(), 1) == 1
                && ffi::HMAC_Final(&mut ctx, t.as_mut_ptr(), &mut t_len) == 1
                && t_len as usize == hash_len;
            if ok {
                out.copy_from_slice(&t[..out.len()]);
            }
        }
        ffi::HMAC_CTX_cleanup(&mut ctx);
        if !ok {
            clear_errors();
            return Err(Error::CryptoFail);
        }
    }
    Ok(())
}

/// The client and server Initial secrets for a client-chosen destination
/// connection ID (RFC 9001 §5.2). Returned as (client, server).
pub fn initial_secrets(dcid: &[u8]) -> Result<([u8; 32], [u8; 32])> {
    let prk = HkdfSuite::new(MessageDigest::sha256())
        .extract(&INITIAL_SALT_V1, dcid)
        .map_err(|_| Error::CryptoFail)?;
    let mut client = [0u8; 32];
    let mut server = [0u8; 32];
    hkdf_expand_labels(
        Algorithm::Aes128Gcm,
        &prk,
        &mut [(b"client in", &mut client), (b"server in", &mut server)],
    )?;
    Ok((client, server))
}

/// A header-protection key (RFC 9001 §5.4).
pub struct HeaderProtectionKey {
    inner: HpInner,
}

enum HpInner {
    Aes(Box<AesHp>),
    ChaCha([u8; 32]),
}

/// An AES header-protection key: its schedule for one mask at a time, and
/// the key itself for [`HeaderProtectionBatch`] (made on demand, so that
/// a connection that never batches pays 32 bytes per key, not a cipher
/// context).
struct AesHp {
    schedule: ffi::AES_KEY,
    raw: [u8; 32],
    len: u8,
}

impl HeaderProtectionKey {
    /// A header-protection key from raw key bytes.
    pub fn new(alg: Algorithm, key: &[u8]) -> Result<Self> {
        if key.len() != alg.hp_key_len() {
            return Err(Error::CryptoFail);
        }
        let inner = match alg {
            Algorithm::Aes128Gcm | Algorithm::Aes256Gcm => {
                let mut raw = [0u8; 32];
                raw[..key.len()].copy_from_slice(key);
                // SAFETY: AES_KEY is a plain C struct of integers, valid when
                // zeroed; AES_set_encrypt_key fills it from `key`, whose length
                // in bits we pass alongside the pointer.
                let mut aes = Box::new(AesHp {
                    schedule: unsafe { std::mem::zeroed() },
                    raw,
                    len: key.len() as u8,
                });
                let rc = unsafe {
                    ffi::AES_set_encrypt_key(
                        key.as_ptr(),
                        (key.len() * 8) as u32,
                        &mut aes.schedule,
                    )
                };
                if rc != 0 {
                    return Err(Error::CryptoFail);
                }
                HpInner::Aes(aes)
            }
            Algorithm::ChaCha20Poly1305 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(key);
                HpInner::ChaCha(k)
            }
        };
        Ok(HeaderProtectionKey { inner })
    }

    /// The five-byte mask for a 16-byte ciphertext sample.
    #[inline]
    pub fn mask(&self, sample: &[u8; HP_SAMPLE_LEN]) -> [u8; 5] {
        let mut mask = [0u8; 5];
        match &self.inner {
            HpInner::Aes(key) => {
                let mut block = [0u8; 16];
                // SAFETY: AES_encrypt reads one 16-byte block from `sample`
                // and writes one to `block`; both are 16-byte arrays, and
                // the schedule was initialised by AES_set_encrypt_key.
                unsafe { ffi::AES_encrypt(sample.as_ptr(), block.as_mut_ptr(), &key.schedule) };
                mask.copy_from_slice(&block[..5]);
            }
            HpInner::ChaCha(key) => chacha_mask(key, sample, &mut mask),
        }
        mask
    }

    /// A context computing the masks of many samples in one call (see
    /// [`HeaderProtectionBatch`]).
    pub fn batch(&self) -> Result<HeaderProtectionBatch> {
        let inner = match &self.inner {
            HpInner::Aes(key) => {
                let cipher = match key.len {
                    16 => boring::symm::Cipher::aes_128_ecb(),
                    _ => boring::symm::Cipher::aes_256_ecb(),
                };
                let mut c = boring::symm::Crypter::new(
                    cipher,
                    boring::symm::Mode::Encrypt,
                    &key.raw[..usize::from(key.len)],
                    None,
                )
                .map_err(|_| Error::CryptoFail)?;
                c.pad(false);
                HpBatchInner::Aes(c)
            }
            HpInner::ChaCha(key) => HpBatchInner::ChaCha(*key),
        };
        Ok(HeaderProtectionBatch { inner })
    }
}

/// RFC 9001 §5.4.4: counter = sample[0..4] little-endian, nonce =
/// sample[4..16]; mask = ChaCha20 of five zero bytes.
fn chacha_mask(key: &[u8; 32], sample: &[u8; HP_SAMPLE_LEN], mask: &mut [u8; 5]) {
    let counter = u32::from_le_bytes([sample[0], sample[1], sample[2], sample[3]]);
    let zeros = [0u8; 5];
    // SAFETY: out and in are 5-byte buffers of the length passed; the key
    // is 32 bytes and the nonce is the 12 bytes of sample[4..16], as
    // CRYPTO_chacha_20 requires.
    unsafe {
        ffi::CRYPTO_chacha_20(
            mask.as_mut_ptr(),
            zeros.as_ptr(),
            zeros.len(),
            key.as_ptr(),
            sample[4..].as_ptr(),
            counter,
        )
    };
}

/// Header-protection masks of many packets at once. With AES the samples
/// go through one multi-block ECB call, whose blocks the AES unit
/// pipelines: ~1.2 ns a mask against ~16 ns for one block at a time (the
/// latency of ten dependent rounds), on this machine kind.
pub struct HeaderProtectionBatch {
    inner: HpBatchInner,
}

enum HpBatchInner {
    Aes(boring::symm::Crypter),
    ChaCha([u8; 32]),
}

impl HeaderProtectionBatch {
    /// Computes the masks of `samples` (n samples of [`HP_SAMPLE_LEN`]
    /// bytes, back to back) into `out`, resized to n + 1 slots of 16
    /// bytes: the mask of sample i is `out[16 * i..16 * i + 5]`.
    pub fn masks(&mut self, samples: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if samples.len() % HP_SAMPLE_LEN != 0 {
            return Err(Error::CryptoFail);
        }
        // The cipher context wants a block of room beyond the input.
        out.resize(samples.len() + HP_SAMPLE_LEN, 0);
        match &mut self.inner {
            HpBatchInner::Aes(c) => {
                let n = c.update(samples, out).map_err(|_| Error::CryptoFail)?;
                if n != samples.len() {
                    return Err(Error::CryptoFail);
                }
            }
            HpBatchInner::ChaCha(key) => {
                for (s, o) in samples
                    .chunks_exact(HP_SAMPLE_LEN)
                    .zip(out.chunks_exact_mut(HP_SAMPLE_LEN))
                {
                    let mut sample = [0u8; HP_SAMPLE_LEN];
                    sample.copy_from_slice(s);
                    let mut mask = [0u8; 5];
                    chacha_mask(key, &sample, &mut mask);
                    o[..5].copy_from_slice(&mask);
                }
            }
        }
        Ok(())
    }
}

/// An AEAD packet key with its IV: seals or opens packet payloads.
pub struct PacketKey {
    alg: Algorithm,
    ctx: AeadCtx,
    iv: [u8; NONCE_LEN],
}

impl PacketKey {
    /// A packet key from raw key and IV bytes.
    pub fn new(alg: Algorithm, key: &[u8], iv: &[u8]) -> Result<Self> {
        if key.len() != alg.key_len() || iv.len() != NONCE_LEN {
            return Err(Error::CryptoFail);
        }
        let ctx = AeadCtx::new_default_tag(&alg.aead(), key).map_err(|_| Error::CryptoFail)?;
        let mut v = [0u8; NONCE_LEN];
        v.copy_from_slice(iv);
        Ok(PacketKey { alg, ctx, iv: v })
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The per-packet nonce: the IV XORed with the packet number
    /// (RFC 9001 §5.3).
    #[inline]
    fn nonce(&self, pn: u64) -> [u8; NONCE_LEN] {
        let mut nonce = self.iv;
        for (n, p) in nonce[NONCE_LEN - 8..].iter_mut().zip(pn.to_be_bytes()) {
            *n ^= p;
        }
        nonce
    }

    /// Encrypts `buf[..len]` in place, authenticating `ad`, and writes the
    /// tag after it: `buf` must have room for `len + TAG_LEN` bytes.
    /// Returns the sealed length.
    #[inline]
    pub fn seal_in_place(&self, pn: u64, ad: &[u8], buf: &mut [u8], len: usize) -> Result<usize> {
        if buf.len() < len + TAG_LEN {
            return Err(Error::BufferTooShort);
        }
        let nonce = self.nonce(pn);
        let (payload, rest) = buf.split_at_mut(len);
        let mut tag_len = 0usize;
        // SAFETY: `payload` is both input and output of exactly `len` bytes
        // (BoringSSL allows in == out); `rest` has at least TAG_LEN bytes for
        // the tag and we pass that bound; nonce and ad are valid slices of
        // the lengths passed; the context is owned and initialised.
        let rc = unsafe {
            ffi::EVP_AEAD_CTX_seal_scatter(
                self.ctx.as_ptr(),
                payload.as_mut_ptr(),
                rest.as_mut_ptr(),
                &mut tag_len,
                TAG_LEN,
                nonce.as_ptr(),
                NONCE_LEN,
                payload.as_ptr(),
                len,
                std::ptr::null(),
                0,
                ad.as_ptr(),
                ad.len(),
            )
        };
        if rc != 1 || tag_len != TAG_LEN {
            clear_errors();
            return Err(Error::CryptoFail);
        }
        Ok(len + TAG_LEN)
    }

    /// Decrypts `buf` (ciphertext followed by the tag) in place,
    /// authenticating `ad`. Returns the plaintext length.
    #[inline]
    pub fn open_in_place(&self, pn: u64, ad: &[u8], buf: &mut [u8]) -> Result<usize> {
        let Some(len) = buf.len().checked_sub(TAG_LEN) else {
            return Err(Error::CryptoFail);
        };
        let nonce = self.nonce(pn);
        let (payload, tag) = buf.split_at_mut(len);
        // SAFETY: in and out alias exactly (`payload`, `len` bytes), the tag
        // is the TAG_LEN bytes after it, nonce and ad are valid slices of
        // the lengths passed, and the context is owned and initialised.
        let rc = unsafe {
            ffi::EVP_AEAD_CTX_open_gather(
                self.ctx.as_ptr(),
                payload.as_mut_ptr(),
                nonce.as_ptr(),
                NONCE_LEN,
                payload.as_ptr(),
                len,
                tag.as_ptr(),
                TAG_LEN,
                ad.as_ptr(),
                ad.len(),
            )
        };
        if rc != 1 {
            // An unauthenticated packet is routine (RFC 9001 §5.5: discard
            // it); leave no error on BoringSSL's thread-local queue.
            clear_errors();
            return Err(Error::CryptoFail);
        }
        Ok(len)
    }
}

fn clear_errors() {
    // SAFETY: ERR_clear_error only touches this thread's error queue.
    unsafe { ffi::ERR_clear_error() };
}

/// The keys for one direction of one encryption level: the packet key,
/// the header-protection key and, for 1-RTT, the secret that key updates
/// derive from.
pub struct DirectionalKeys {
    /// AEAD key and IV.
    pub packet: PacketKey,
    /// Header-protection key; unchanged by key updates (RFC 9001 §6).
    pub hp: HeaderProtectionKey,
    secret: [u8; MAX_SECRET_LEN],
}

impl DirectionalKeys {
    /// Derives the keys of a traffic secret (RFC 9001 §5.1).
    pub fn from_secret(alg: Algorithm, secret: &[u8]) -> Result<Self> {
        if secret.len() != alg.secret_len() {
            return Err(Error::CryptoFail);
        }
        let mut key = [0u8; 32];
        let mut iv = [0u8; NONCE_LEN];
        let mut hp = [0u8; 32];
        let key = &mut key[..alg.key_len()];
        let hp = &mut hp[..alg.hp_key_len()];
        hkdf_expand_labels(
            alg,
            secret,
            &mut [(b"quic key", key), (b"quic iv", &mut iv), (b"quic hp", hp)],
        )?;
        let mut s = [0u8; MAX_SECRET_LEN];
        s[..secret.len()].copy_from_slice(secret);
        Ok(DirectionalKeys {
            packet: PacketKey::new(alg, key, &iv)?,
            hp: HeaderProtectionKey::new(alg, hp)?,
            secret: s,
        })
    }

    /// The algorithm of these keys.
    pub fn algorithm(&self) -> Algorithm {
        self.packet.alg
    }

    /// The traffic secret these keys came from.
    pub fn secret(&self) -> &[u8] {
        &self.secret[..self.packet.alg.secret_len()]
    }

    /// The next generation's secret and packet key for a key update
    /// (RFC 9001 §6.1: "quic ku"); the header-protection key is kept.
    pub fn next_packet_key(&self) -> Result<([u8; MAX_SECRET_LEN], PacketKey)> {
        let alg = self.packet.alg;
        let mut next = [0u8; MAX_SECRET_LEN];
        hkdf_expand_label(
            alg,
            self.secret(),
            b"quic ku",
            &mut next[..alg.secret_len()],
        )?;
        let mut key = [0u8; 32];
        let mut iv = [0u8; NONCE_LEN];
        hkdf_expand_labels(
            alg,
            &next[..alg.secret_len()],
            &mut [
                (b"quic key", &mut key[..alg.key_len()]),
                (b"quic iv", &mut iv),
            ],
        )?;
        Ok((next, PacketKey::new(alg, &key[..alg.key_len()], &iv)?))
    }

    /// Replaces the packet key and secret with the next generation and
    /// returns the old packet key (kept briefly for reordered packets).
    pub fn update_returning_old(&mut self) -> Result<PacketKey> {
        let (secret, packet) = self.next_packet_key()?;
        self.secret = secret;
        Ok(std::mem::replace(&mut self.packet, packet))
    }

    /// Replaces the packet key and secret with the next generation
    /// (RFC 9001 §6).
    pub fn update(&mut self) -> Result<()> {
        let (secret, packet) = self.next_packet_key()?;
        self.packet = packet;
        self.secret = secret;
        Ok(())
    }

    /// The Initial keys of one side for a client-chosen DCID
    /// (RFC 9001 §5.2). `is_server` selects the server's keys.
    pub fn initial(dcid: &[u8], is_server: bool) -> Result<Self> {
        let (client, server) = initial_secrets(dcid)?;
        let secret = if is_server { server } else { client };
        DirectionalKeys::from_secret(Algorithm::Aes128Gcm, &secret)
    }

    /// An endpoint's Initial keys in both directions, (open, seal), from
    /// one HKDF-Extract: a server opens with the client's keys and seals
    /// with its own, a client the other way round (RFC 9001 §5.2).
    pub fn initial_pair(dcid: &[u8], is_server: bool) -> Result<(Self, Self)> {
        let (client, server) = initial_secrets(dcid)?;
        let (open, seal) = if is_server {
            (client, server)
        } else {
            (server, client)
        };
        Ok((
            DirectionalKeys::from_secret(Algorithm::Aes128Gcm, &open)?,
            DirectionalKeys::from_secret(Algorithm::Aes128Gcm, &seal)?,
        ))
    }
}

/// The Retry integrity tag over a pseudo-packet (RFC 9001 §5.8):
/// `pseudo` is the ODCID length byte, the ODCID, and the Retry packet up to
/// (not including) its tag.
pub fn retry_integrity_tag(pseudo: &[u8]) -> Result<[u8; TAG_LEN]> {
    let key = PacketKey::new(Algorithm::Aes128Gcm, &RETRY_KEY_V1, &RETRY_NONCE_V1)?;
    let mut tag = [0u8; TAG_LEN];
    // The plaintext is empty: sealing nothing yields just the tag; pn 0
    // leaves the fixed nonce unchanged.
    key.seal_in_place(0, pseudo, &mut tag, 0)?;
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_masks_equal_single_masks() {
        for alg in [
            Algorithm::Aes128Gcm,
            Algorithm::Aes256Gcm,
            Algorithm::ChaCha20Poly1305,
        ] {
            let key: Vec<u8> = (0..alg.hp_key_len() as u8).map(|i| i ^ 0x5c).collect();
            let hp = HeaderProtectionKey::new(alg, &key).unwrap();
            let mut batch = hp.batch().unwrap();
            let mut out = Vec::new();
            for n in [1usize, 2, 7, 8, 9, 33] {
                let samples: Vec<u8> = (0..n * HP_SAMPLE_LEN)
                    .map(|i| (i * 131 % 256) as u8)
                    .collect();
                batch.masks(&samples, &mut out).unwrap();
                for (i, s) in samples.chunks_exact(HP_SAMPLE_LEN).enumerate() {
                    let one = hp.mask(s.try_into().unwrap());
                    assert_eq!(&out[i * 16..i * 16 + 5], &one[..], "{alg:?} {n} {i}");
                }
            }
            // Not a whole number of samples: an error, not a panic.
            assert_eq!(batch.masks(&[0; 17], &mut out), Err(Error::CryptoFail));
        }
    }

    #[test]
    fn expanding_several_labels_matches_one_at_a_time() {
        for alg in [
            Algorithm::Aes128Gcm,
            Algorithm::Aes256Gcm,
            Algorithm::ChaCha20Poly1305,
        ] {
            let secret: Vec<u8> = (0..alg.secret_len() as u8)
                .map(|i| i.wrapping_mul(37))
                .collect();
            let labels: [&[u8]; 4] = [b"quic key", b"quic iv", b"quic hp", b"quic ku"];
            let lens = [alg.key_len(), NONCE_LEN, alg.hp_key_len(), alg.secret_len()];
            let mut bufs: Vec<Vec<u8>> = lens.iter().map(|&n| vec![0u8; n]).collect();
            let mut outs: Vec<(&[u8], &mut [u8])> = labels
                .iter()
                .copied()
                .zip(bufs.iter_mut().map(|b| b.as_mut_slice()))
                .collect();
            hkdf_expand_labels(alg, &secret, &mut outs).unwrap();
            for (label, got) in labels.iter().zip(&bufs) {
                let mut want = vec![0u8; got.len()];
                hkdf_expand_label(alg, &secret, label, &mut want).unwrap();
                assert_eq!(got, &want, "{alg:?} {}", String::from_utf8_lossy(label));
            }
        }
        // Longer than one hash: refused, not truncated.
        let mut long = [0u8; 33];
        assert_eq!(
            hkdf_expand_labels(Algorithm::Aes128Gcm, &[1; 32], &mut [(b"x", &mut long)]),
            Err(Error::CryptoFail)
        );
    }

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    // RFC 9001 Appendix A.1: keys from DCID 0x8394c8f03e515708.
    #[test]
    fn rfc9001_a1_keys() {
        let dcid = h("8394c8f03e515708");
        let (client, server) = initial_secrets(&dcid).unwrap();
        assert_eq!(
            client.to_vec(),
            h("c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea")
        );
        assert_eq!(
            server.to_vec(),
            h("3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b")
        );
        let mut key = [0u8; 16];
        let mut iv = [0u8; 12];
        let mut hp = [0u8; 16];
        let alg = Algorithm::Aes128Gcm;
        hkdf_expand_label(alg, &client, b"quic key", &mut key).unwrap();
        hkdf_expand_label(alg, &client, b"quic iv", &mut iv).unwrap();
        hkdf_expand_label(alg, &client, b"quic hp", &mut hp).unwrap();
        assert_eq!(key.to_vec(), h("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(iv.to_vec(), h("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(hp.to_vec(), h("9f50449e04a0e810283a1e9933adedd2"));
        hkdf_expand_label(alg, &server, b"quic key", &mut key).unwrap();
        hkdf_expand_label(alg, &server, b"quic iv", &mut iv).unwrap();
        hkdf_expand_label(alg, &server, b"quic hp", &mut hp).unwrap();
        assert_eq!(key.to_vec(), h("cf3a5331653c364c88f0f379b6067e37"));
        assert_eq!(iv.to_vec(), h("0ac1493ca1905853b0bba03e"));
        assert_eq!(hp.to_vec(), h("c206b8d9b9f0f37644430b490eeaa314"));
    }

    // Both directions from one extract: a server opens with the client's
    // Initial secret and seals with its own; a client the other way round.
    #[test]
    fn initial_pair_directions() {
        let dcid = h("8394c8f03e515708");
        let client = h("c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea");
        let server = h("3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b");
        let (open, seal) = DirectionalKeys::initial_pair(&dcid, true).unwrap();
        assert_eq!((open.secret(), seal.secret()), (&client[..], &server[..]));
        let (open, seal) = DirectionalKeys::initial_pair(&dcid, false).unwrap();
        assert_eq!((open.secret(), seal.secret()), (&server[..], &client[..]));
        // And the packet keys agree: what the client seals, the server opens.
        let (s_open, _) = DirectionalKeys::initial_pair(&dcid, true).unwrap();
        let mut buf = b"client initial payload".to_vec();
        let n = buf.len();
        buf.resize(n + TAG_LEN, 0);
        seal.packet.seal_in_place(2, b"hdr", &mut buf, n).unwrap();
        let m = s_open.packet.open_in_place(2, b"hdr", &mut buf).unwrap();
        assert_eq!(&buf[..m], b"client initial payload");
    }

    // RFC 9001 Appendix A.5: ChaCha20-Poly1305 secret, keys and key update.
    #[test]
    fn rfc9001_a5_chacha_keys_and_ku() {
        let secret = h("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b");
        let alg = Algorithm::ChaCha20Poly1305;
        let mut key = [0u8; 32];
        let mut iv = [0u8; 12];
        let mut hp = [0u8; 32];
        let mut ku = [0u8; 32];
        hkdf_expand_label(alg, &secret, b"quic key", &mut key).unwrap();
        hkdf_expand_label(alg, &secret, b"quic iv", &mut iv).unwrap();
        hkdf_expand_label(alg, &secret, b"quic hp", &mut hp).unwrap();
        hkdf_expand_label(alg, &secret, b"quic ku", &mut ku).unwrap();
        assert_eq!(
            key.to_vec(),
            h("c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8")
        );
        assert_eq!(iv.to_vec(), h("e0459b3474bdd0e44a41c144"));
        assert_eq!(
            hp.to_vec(),
            h("25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4")
        );
        assert_eq!(
            ku.to_vec(),
            h("1223504755036d556342ee9361d253421a826c9ecdf3c7148684b36b714881f9")
        );
        let keys = DirectionalKeys::from_secret(alg, &secret).unwrap();
        let (next, _) = keys.next_packet_key().unwrap();
        assert_eq!(&next[..32], &ku[..]);

        // Header-protection mask from the appendix's sample.
        let sample: [u8; 16] = h("5e5cd55c41f69080575d7999c25a5bfb").try_into().unwrap();
        assert_eq!(keys.hp.mask(&sample).to_vec(), h("aefefe7d03"));
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        for alg in [
            Algorithm::Aes128Gcm,
            Algorithm::Aes256Gcm,
            Algorithm::ChaCha20Poly1305,
        ] {
            let secret = vec![7u8; alg.secret_len()];
            let keys = DirectionalKeys::from_secret(alg, &secret).unwrap();
            let mut buf = [0u8; 64 + TAG_LEN];
            buf[..64].copy_from_slice(&[0x42; 64]);
            let n = keys.packet.seal_in_place(9, b"hdr", &mut buf, 64).unwrap();
            assert_eq!(n, 64 + TAG_LEN);
            assert_ne!(&buf[..64], &[0x42; 64][..]);
            let mut copy = buf;
            assert_eq!(keys.packet.open_in_place(9, b"hdr", &mut copy).unwrap(), 64);
            assert_eq!(&copy[..64], &[0x42; 64][..]);
            // Wrong pn, wrong ad, flipped bit: all rejected.
            let mut copy = buf;
            assert_eq!(
                keys.packet.open_in_place(8, b"hdr", &mut copy),
                Err(Error::CryptoFail)
            );
            let mut copy = buf;
            assert_eq!(
                keys.packet.open_in_place(9, b"hdx", &mut copy),
                Err(Error::CryptoFail)
            );
            let mut copy = buf;
            copy[3] ^= 1;
            assert_eq!(
                keys.packet.open_in_place(9, b"hdr", &mut copy),
                Err(Error::CryptoFail)
            );
            assert_eq!(
                keys.packet.open_in_place(9, b"hdr", &mut [0u8; 15]),
                Err(Error::CryptoFail)
            );
            assert_eq!(
                keys.packet.seal_in_place(9, b"hdr", &mut [0u8; 20], 10),
                Err(Error::BufferTooShort)
            );
        }
    }

    #[test]
    fn bad_key_lengths_are_errors() {
        assert!(PacketKey::new(Algorithm::Aes128Gcm, &[0; 15], &[0; 12]).is_err());
        assert!(PacketKey::new(Algorithm::Aes128Gcm, &[0; 16], &[0; 11]).is_err());
        assert!(HeaderProtectionKey::new(Algorithm::ChaCha20Poly1305, &[0; 16]).is_err());
        assert!(DirectionalKeys::from_secret(Algorithm::Aes256Gcm, &[0; 32]).is_err());
    }
}

//! Packet headers (RFC 9000 §17), packet numbers (§17.1, Appendix A),
//! Version Negotiation and Retry packets, and packet protection applied to
//! whole packets in place (RFC 9001 §5).

use crate::cid::{ConnectionId, MAX_CONN_ID_LEN};
use crate::crypto::{
    self, DirectionalKeys, HeaderProtectionKey, PacketKey, HP_SAMPLE_LEN, TAG_LEN,
};
use crate::error::{Error, Result};
use crate::octets::{Octets, OctetsMut};

/// The current QUIC wire version.
pub const PROTOCOL_VERSION: u32 = PROTOCOL_VERSION_V1;

/// QUIC version 1 (RFC 9000).
pub const PROTOCOL_VERSION_V1: u32 = 0x0000_0001;

/// Whether `version` is a QUIC version this implementation speaks.
pub fn version_is_supported(version: u32) -> bool {
    version == PROTOCOL_VERSION_V1
}

const FORM_BIT: u8 = 0x80;
const FIXED_BIT: u8 = 0x40;
const KEY_PHASE_BIT: u8 = 0x04;
const TYPE_MASK: u8 = 0x30;
const PKT_NUM_MASK: u8 = 0x03;

/// Longest packet-number encoding (RFC 9000 §17.1).
pub const MAX_PKT_NUM_LEN: usize = 4;

/// QUIC packet type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// Initial packet.
    Initial,
    /// Retry packet.
    Retry,
    /// Handshake packet.
    Handshake,
    /// 0-RTT packet.
    ZeroRTT,
    /// Version negotiation packet.
    VersionNegotiation,
    /// 1-RTT short header packet.
    Short,
}

impl Type {
    /// The long-header type bits (RFC 9000 §17.2, version 1).
    fn long_bits(self) -> Option<u8> {
        match self {
            Type::Initial => Some(0x00),
            Type::ZeroRTT => Some(0x01),
            Type::Handshake => Some(0x02),
            Type::Retry => Some(0x03),
            _ => None,
        }
    }

    fn from_long_bits(bits: u8) -> Type {
        match bits & 0x03 {
            0x00 => Type::Initial,
            0x01 => Type::ZeroRTT,
            0x02 => Type::Handshake,
            _ => Type::Retry,
        }
    }
}

/// A QUIC packet's header.
#[derive(Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// The type of the packet.
    pub ty: Type,
    /// The version of the packet.
    pub version: u32,
    /// The destination connection ID of the packet.
    pub dcid: ConnectionId<'a>,
    /// The source connection ID of the packet.
    pub scid: ConnectionId<'a>,
    /// The packet number. Only valid after header protection is removed.
    pub(crate) pkt_num: u64,
    /// The length of the packet number. Only valid after header protection
    /// is removed.
    pub(crate) pkt_num_len: usize,
    /// The address verification token of the packet. Only present in
    /// `Initial` and `Retry` packets.
    pub token: Option<Vec<u8>>,
    /// The list of versions in the packet. Only present in
    /// `VersionNegotiation` packets.
    pub versions: Option<Vec<u32>>,
    /// The key phase bit of the packet. Only valid after header protection
    /// is removed.
    pub(crate) key_phase: bool,
}

impl<'a> Header<'a> {
    /// Parses a QUIC packet header from the given buffer.
    ///
    /// The `dcid_len` parameter is the length of the destination connection
    /// ID, required to parse short header packets.
    ///
    /// ```
    /// # let mut buf = [0xc0, 0, 0, 0, 1, 1, 7, 0, 0];
    /// let hdr = tarte::Header::from_slice(&mut buf, 8).unwrap();
    /// assert_eq!(hdr.ty, tarte::Type::Initial);
    /// ```
    #[inline]
    pub fn from_slice<'b>(buf: &'b mut [u8], dcid_len: usize) -> Result<Header<'b>> {
        let mut b = Octets::with_slice(buf);
        Header::from_bytes(&mut b, dcid_len)
    }

    /// Parses a header from a cursor, leaving it after the fields that are
    /// not header-protected: the token for Initial packets, the SCID for
    /// other long headers, the DCID for short headers. For Retry packets the
    /// cursor ends at the integrity tag; for Version Negotiation at the end.
    pub(crate) fn from_bytes(b: &mut Octets<'a>, dcid_len: usize) -> Result<Header<'a>> {
        let first = b.get_u8().map_err(|_| Error::InvalidPacket)?;

        if first & FORM_BIT == 0 {
            // RFC 9000 §17.3: short header; the DCID length is the one the
            // receiver chose.
            if dcid_len > MAX_CONN_ID_LEN {
                return Err(Error::InvalidPacket);
            }
            let dcid = b.get_bytes(dcid_len).map_err(|_| Error::InvalidPacket)?;
            return Ok(Header {
                ty: Type::Short,
                version: 0,
                dcid: ConnectionId::from_ref(dcid),
                scid: ConnectionId::default(),
                pkt_num: 0,
                pkt_num_len: 0,
                token: None,
                versions: None,
                key_phase: false,
            });
        }

        let version = b.get_u32().map_err(|_| Error::InvalidPacket)?;
        let dcid = b
            .get_bytes_with_u8_length()
            .map_err(|_| Error::InvalidPacket)?;
        let scid = b
            .get_bytes_with_u8_length()
            .map_err(|_| Error::InvalidPacket)?;

        if version == 0 {
            // RFC 9000 §17.2.1: Version Negotiation; the rest is a list of
            // 32-bit versions.
            if b.cap() == 0 || b.cap() % 4 != 0 {
                return Err(Error::InvalidPacket);
            }
            let mut versions = Vec::with_capacity(b.cap() / 4);
            while b.cap() > 0 {
                versions.push(b.get_u32().map_err(|_| Error::InvalidPacket)?);
            }
            return Ok(Header {
                ty: Type::VersionNegotiation,
                version,
                dcid: ConnectionId::from_ref(dcid),
                scid: ConnectionId::from_ref(scid),
                pkt_num: 0,
                pkt_num_len: 0,
                token: None,
                versions: Some(versions),
                key_phase: false,
            });
        }

        if !version_is_supported(version) {
            // RFC 8999 §5.1: only the invariant fields are known; the
            // caller answers with Version Negotiation (RFC 9000 §6.1).
            return Ok(Header {
                ty: Type::from_long_bits((first & TYPE_MASK) >> 4),
                version,
                dcid: ConnectionId::from_ref(dcid),
                scid: ConnectionId::from_ref(scid),
                pkt_num: 0,
                pkt_num_len: 0,
                token: None,
                versions: None,
                key_phase: false,
            });
        }

        // RFC 9000 §17.2: "In QUIC version 1, this value MUST NOT exceed 20
        // bytes. Endpoints that receive a version 1 long header with a value
        // larger than 20 MUST drop the packet."
        if dcid.len() > MAX_CONN_ID_LEN || scid.len() > MAX_CONN_ID_LEN {
            return Err(Error::InvalidPacket);
        }

        let ty = Type::from_long_bits((first & TYPE_MASK) >> 4);
        let token = match ty {
            Type::Initial => Some(
                b.get_bytes_with_varint_length()
                    .map_err(|_| Error::InvalidPacket)?
                    .to_vec(),
            ),
            Type::Retry => {
                // RFC 9000 §17.2.5: the token runs to the 16-byte tag.
                let len = b.cap().checked_sub(TAG_LEN).ok_or(Error::InvalidPacket)?;
                Some(b.get_bytes(len).map_err(|_| Error::InvalidPacket)?.to_vec())
            }
            _ => None,
        };

        Ok(Header {
            ty,
            version,
            dcid: ConnectionId::from_ref(dcid),
            scid: ConnectionId::from_ref(scid),
            pkt_num: 0,
            pkt_num_len: 0,
            token,
            versions: None,
            key_phase: false,
        })
    }

    /// Writes the header up to (not including) the Length field for long
    /// headers, or up to the packet number for short headers. The packet
    /// number length bits are taken from `pkt_num_len`.
    pub(crate) fn to_bytes(&self, out: &mut OctetsMut<'_>) -> Result<()> {
        let pn_bits = (self.pkt_num_len.saturating_sub(1) as u8) & PKT_NUM_MASK;
        if self.ty == Type::Short {
            let mut first = FIXED_BIT | pn_bits;
            if self.key_phase {
                first |= KEY_PHASE_BIT;
            }
            out.put_u8(first)?;
            out.put_bytes(&self.dcid)?;
            return Ok(());
        }
        let bits = self.ty.long_bits().ok_or(Error::InvalidPacket)?;
        out.put_u8(FORM_BIT | FIXED_BIT | (bits << 4) | pn_bits)?;
        out.put_u32(self.version)?;
        out.put_u8(self.dcid.len() as u8)?;
        out.put_bytes(&self.dcid)?;
        out.put_u8(self.scid.len() as u8)?;
        out.put_bytes(&self.scid)?;
        if self.ty == Type::Initial {
            let token = self.token.as_deref().unwrap_or_default();
            out.put_varint(token.len() as u64)?;
            out.put_bytes(token)?;
        }
        Ok(())
    }
}

impl Header<'_> {
    /// The same header owning its connection IDs.
    pub fn into_owned(self) -> Header<'static> {
        Header {
            ty: self.ty,
            version: self.version,
            dcid: self.dcid.into_owned(),
            scid: self.scid.into_owned(),
            pkt_num: self.pkt_num,
            pkt_num_len: self.pkt_num_len,
            token: self.token,
            versions: self.versions,
            key_phase: self.key_phase,
        }
    }
}

impl std::fmt::Debug for Header<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.ty)?;
        if self.ty != Type::Short {
            write!(f, " version={:x}", self.version)?;
        }
        write!(f, " dcid={}", self.dcid)?;
        if self.ty != Type::Short {
            write!(f, " scid={}", self.scid)?;
        }
        if let Some(token) = &self.token {
            write!(f, " token=")?;
            for b in token {
                write!(f, "{b:02x}")?;
            }
        }
        if let Some(versions) = &self.versions {
            write!(f, " versions={versions:x?}")?;
        }
        if self.ty == Type::Short {
            write!(f, " key_phase={}", self.key_phase)?;
        }
        Ok(())
    }
}

/// The invariant fields of a packet, read without allocating and before
/// any decryption (RFC 8999): what a router needs to pick a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketPeek<'a> {
    /// Whether the packet has a long header.
    pub is_long: bool,
    /// The version (0 for short headers and Version Negotiation).
    pub version: u32,
    /// The packet type; `None` for long headers of unknown versions.
    pub ty: Option<Type>,
    /// Destination connection ID.
    pub dcid: &'a [u8],
    /// Source connection ID (empty for short headers).
    pub scid: &'a [u8],
}

/// Reads the invariant header of the first packet in `buf` (RFC 8999 §5).
/// `short_dcid_len` is the DCID length this endpoint issues. Unknown
/// versions are reported, not rejected, so the caller can send Version
/// Negotiation (RFC 8999 allows connection IDs up to 255 bytes there).
pub fn peek(buf: &[u8], short_dcid_len: usize) -> Result<PacketPeek<'_>> {
    let mut b = Octets::with_slice(buf);
    let first = b.get_u8().map_err(|_| Error::InvalidPacket)?;
    if first & FORM_BIT == 0 {
        let dcid = b
            .get_bytes(short_dcid_len)
            .map_err(|_| Error::InvalidPacket)?;
        return Ok(PacketPeek {
            is_long: false,
            version: 0,
            ty: Some(Type::Short),
            dcid,
            scid: &[],
        });
    }
    let version = b.get_u32().map_err(|_| Error::InvalidPacket)?;
    let dcid = b
        .get_bytes_with_u8_length()
        .map_err(|_| Error::InvalidPacket)?;
    let scid = b
        .get_bytes_with_u8_length()
        .map_err(|_| Error::InvalidPacket)?;
    let ty = if version == 0 {
        Some(Type::VersionNegotiation)
    } else if version_is_supported(version) {
        Some(Type::from_long_bits((first & TYPE_MASK) >> 4))
    } else {
        None
    };
    Ok(PacketPeek {
        is_long: true,
        version,
        ty,
        dcid,
        scid,
    })
}

/// Number of bytes needed to encode `pn` so that a peer that has seen
/// `largest_acked` decodes it correctly (RFC 9000 §17.1, Appendix A.2).
pub fn pkt_num_len(pn: u64, largest_acked: Option<u64>) -> usize {
    let num_unacked = match largest_acked {
        Some(la) => pn.saturating_sub(la),
        None => pn.saturating_add(1),
    };
    // Twice the range, plus one bit for the sign.
    let min_bits = 64 - num_unacked.leading_zeros() + 1;
    (min_bits as usize).div_ceil(8).clamp(1, MAX_PKT_NUM_LEN)
}

/// Recovers a full packet number from its truncated encoding
/// (RFC 9000 Appendix A.3).
pub fn decode_pkt_num(largest_pn: Option<u64>, truncated_pn: u64, pn_len: usize) -> u64 {
    let expected = largest_pn.map_or(0, |l| l + 1);
    let pn_nbits = (pn_len * 8) as u32;
    let pn_win = 1u64 << pn_nbits;
    let pn_hwin = pn_win / 2;
    let pn_mask = pn_win - 1;
    let candidate = (expected & !pn_mask) | truncated_pn;
    if candidate + pn_hwin <= expected && candidate < (1u64 << 62) - pn_win {
        candidate + pn_win
    } else if candidate > expected + pn_hwin && candidate >= pn_win {
        candidate - pn_win
    } else {
        candidate
    }
}

/// Writes the low `len` bytes of `pn`.
pub fn encode_pkt_num(pn: u64, len: usize, out: &mut OctetsMut<'_>) -> Result<()> {
    match len {
        1 => out.put_u8(pn as u8)?,
        2 => out.put_u16(pn as u16)?,
        3 => out.put_u24((pn & 0xff_ffff) as u32)?,
        4 => out.put_u32(pn as u32)?,
        _ => return Err(Error::InvalidPacket),
    }
    Ok(())
}

/// Writes a version negotiation packet in answer to a packet whose header
/// carried `scid` and `dcid`: the answer's DCID is their SCID and vice
/// versa (RFC 9000 §17.2.1). Returns the number of bytes written.
pub fn negotiate_version(
    scid: &ConnectionId<'_>,
    dcid: &ConnectionId<'_>,
    out: &mut [u8],
) -> Result<usize> {
    let mut b = OctetsMut::with_slice(out);
    // The unused bits are random in principle; a fixed value with the
    // fixed bit set keeps middleboxes that check it happy (RFC 9000 §17.2.1).
    b.put_u8(FORM_BIT | FIXED_BIT | 0x0a)?;
    b.put_u32(0)?;
    b.put_u8(u8::try_from(scid.len()).map_err(|_| Error::InvalidPacket)?)?;
    b.put_bytes(scid)?;
    b.put_u8(u8::try_from(dcid.len()).map_err(|_| Error::InvalidPacket)?)?;
    b.put_bytes(dcid)?;
    b.put_u32(PROTOCOL_VERSION_V1)?;
    // A reserved version (RFC 9000 §15: 0x?a?a?a?a) exercises the client's
    // handling of versions it does not know.
    b.put_u32(0x1a2a_3a4a)?;
    Ok(b.off())
}

/// Writes a Retry packet in answer to a client Initial whose header carried
/// `scid` and `dcid`: the Retry goes to their SCID, comes from `new_scid`,
/// carries `token`, and its integrity tag covers the client's original
/// `dcid` (RFC 9000 §17.2.5, RFC 9001 §5.8). Returns the bytes written.
pub fn retry(
    scid: &ConnectionId<'_>,
    dcid: &ConnectionId<'_>,
    new_scid: &ConnectionId<'_>,
    token: &[u8],
    version: u32,
    out: &mut [u8],
) -> Result<usize> {
    if !version_is_supported(version) {
        return Err(Error::UnknownVersion);
    }
    if dcid.len() > MAX_CONN_ID_LEN
        || scid.len() > MAX_CONN_ID_LEN
        || new_scid.len() > MAX_CONN_ID_LEN
    {
        return Err(Error::InvalidPacket);
    }
    let hdr = Header {
        ty: Type::Retry,
        version,
        dcid: ConnectionId::from_ref(scid),
        scid: ConnectionId::from_ref(new_scid),
        pkt_num: 0,
        pkt_num_len: 0,
        token: None,
        versions: None,
        key_phase: false,
    };
    let mut b = OctetsMut::with_slice(out);
    hdr.to_bytes(&mut b)?;
    // RFC 9000 §17.2.5: the low four bits are unused; set them as the
    // RFC 9001 A.4 example does.
    b.buf_mut()[0] |= 0x0f;
    b.put_bytes(token)?;
    let len = b.off();
    let tag = retry_tag(dcid, &out[..len])?;
    let mut b = OctetsMut::with_slice(&mut out[len..]);
    b.put_bytes(&tag)?;
    Ok(len + TAG_LEN)
}

/// Smallest Stateless Reset: 5 unpredictable bytes (the first two bits
/// fixed) and the 16-byte token (RFC 9000 §10.3).
pub const MIN_STATELESS_RESET_LEN: usize = 21;

/// Length of the Stateless Resets sent in answer to datagrams larger than
/// it plus one: 43 bytes look like a short-header packet with a 20-byte
/// connection ID (RFC 9000 §10.3 asks for at least 41 to avoid standing
/// out).
const STATELESS_RESET_LEN: usize = 43;

/// Writes a Stateless Reset (RFC 9000 §10.3) carrying `token`, in answer
/// to a datagram of `trigger_len` bytes that belongs to no connection.
/// It is always shorter than the trigger, so two endpoints that lost state
/// cannot reset each other forever (§10.3.3 "MUST ensure that every
/// Stateless Reset that it sends is smaller than the packet that
/// triggered it"): 43 bytes, or one byte less than a shorter trigger.
/// `Err(Done)` when the trigger is too short to answer (22 bytes or
/// less); `Err(BufferTooShort)` when `out` is.
pub fn stateless_reset(token: u128, trigger_len: usize, out: &mut [u8]) -> Result<usize> {
    let len = trigger_len.saturating_sub(1).min(STATELESS_RESET_LEN);
    if len < MIN_STATELESS_RESET_LEN {
        return Err(Error::Done);
    }
    let out = out.get_mut(..len).ok_or(Error::BufferTooShort)?;
    boring::rand::rand_bytes(&mut out[..len - 16]).map_err(|_| Error::CryptoFail)?;
    // A short header: form bit 0, fixed bit 1, the rest unpredictable.
    out[0] = (out[0] & 0x3f) | FIXED_BIT;
    out[len - 16..].copy_from_slice(&token.to_be_bytes());
    Ok(len)
}

/// The Retry integrity tag for a Retry packet (without its tag) sent in
/// answer to a client whose original DCID was `odcid` (RFC 9001 §5.8).
pub fn retry_tag(odcid: &[u8], retry_without_tag: &[u8]) -> Result<[u8; TAG_LEN]> {
    // The pseudo-packet is at most 1 + 20 + a datagram.
    let mut pseudo = [0u8; 1 + MAX_CONN_ID_LEN + 1500];
    let odcid_len = u8::try_from(odcid.len()).map_err(|_| Error::InvalidPacket)?;
    let total = 1 + odcid.len() + retry_without_tag.len();
    if total > pseudo.len() {
        return Err(Error::BufferTooShort);
    }
    pseudo[0] = odcid_len;
    pseudo[1..1 + odcid.len()].copy_from_slice(odcid);
    pseudo[1 + odcid.len()..total].copy_from_slice(retry_without_tag);
    crypto::retry_integrity_tag(&pseudo[..total])
}

/// Whether the Retry packet `pkt` (tag included) carries a valid integrity
/// tag for the client's original DCID `odcid`.
pub fn verify_retry(odcid: &[u8], pkt: &[u8]) -> bool {
    let Some(split) = pkt.len().checked_sub(TAG_LEN) else {
        return false;
    };
    match retry_tag(odcid, &pkt[..split]) {
        // Not secret-dependent: the Retry key is public (RFC 9001 §5.8).
        Ok(tag) => tag[..] == pkt[split..],
        Err(_) => false,
    }
}

/// Applies header protection to a packet whose header ends at
/// `pn_off + pn_len` (RFC 9001 §5.4.1).
#[inline]
pub fn apply_header_protection(
    buf: &mut [u8],
    pn_off: usize,
    pn_len: usize,
    hp: &HeaderProtectionKey,
) -> Result<()> {
    let mask = hp.mask(&sample(buf, pn_off)?);
    apply_mask(buf, pn_off, pn_len, &mask)
}

/// Applies (or removes: it is its own inverse) a header-protection mask
/// computed elsewhere, e.g. by a `HeaderProtectionBatch`, to the first
/// byte and the `pn_len` packet-number bytes at `pn_off` (RFC 9001
/// §5.4.1).
#[inline]
pub fn apply_mask(buf: &mut [u8], pn_off: usize, pn_len: usize, mask: &[u8; 5]) -> Result<()> {
    if pn_len > MAX_PKT_NUM_LEN || buf.len() < pn_off + pn_len || pn_off == 0 {
        return Err(Error::BufferTooShort);
    }
    let long = buf[0] & FORM_BIT != 0;
    buf[0] ^= mask[0] & if long { 0x0f } else { 0x1f };
    for (b, m) in buf[pn_off..pn_off + pn_len].iter_mut().zip(&mask[1..]) {
        *b ^= m;
    }
    Ok(())
}

/// Removes header protection in place and returns the packet number
/// length (RFC 9001 §5.4.1).
#[inline]
pub fn remove_header_protection(
    buf: &mut [u8],
    pn_off: usize,
    hp: &HeaderProtectionKey,
) -> Result<usize> {
    let mask = hp.mask(&sample(buf, pn_off)?);
    Ok(remove_mask(buf, pn_off, &mask))
}

/// [`remove_header_protection`] with the mask given; the sample must be
/// in `buf` (checked by the caller that computed the mask).
#[inline]
fn remove_mask(buf: &mut [u8], pn_off: usize, mask: &[u8; 5]) -> usize {
    let long = buf[0] & FORM_BIT != 0;
    buf[0] ^= mask[0] & if long { 0x0f } else { 0x1f };
    let pn_len = usize::from(buf[0] & PKT_NUM_MASK) + 1;
    for (b, m) in buf[pn_off..pn_off + pn_len].iter_mut().zip(&mask[1..]) {
        *b ^= m;
    }
    pn_len
}

/// The header-protection sample: 16 bytes starting 4 bytes after the start
/// of the packet number field (RFC 9001 §5.4.2).
#[inline]
fn sample(buf: &[u8], pn_off: usize) -> Result<[u8; HP_SAMPLE_LEN]> {
    let start = pn_off + MAX_PKT_NUM_LEN;
    let s = buf
        .get(start..start + HP_SAMPLE_LEN)
        .ok_or(Error::InvalidPacket)?;
    let mut out = [0u8; HP_SAMPLE_LEN];
    out.copy_from_slice(s);
    Ok(out)
}

/// Seals a packet in place. `buf` holds the header (its packet number
/// written in `pn_len` bytes at `pn_off`) followed by `payload_len` bytes
/// of plaintext, and has room for the tag after it. For long headers the
/// Length field must already count the tag. Returns the packet's length.
#[inline]
pub fn protect(
    buf: &mut [u8],
    pn_off: usize,
    pn_len: usize,
    pn: u64,
    payload_len: usize,
    keys: &DirectionalKeys,
) -> Result<usize> {
    protect_with(buf, pn_off, pn_len, pn, payload_len, &keys.packet, &keys.hp)
}

/// [`protect`] with the packet key and header-protection key given
/// separately (a key update changes only the former).
#[inline]
pub fn protect_with(
    buf: &mut [u8],
    pn_off: usize,
    pn_len: usize,
    pn: u64,
    payload_len: usize,
    packet: &PacketKey,
    hp: &HeaderProtectionKey,
) -> Result<usize> {
    let total = seal(buf, pn_off, pn_len, pn, payload_len, packet)?;
    apply_header_protection(&mut buf[..total], pn_off, pn_len, hp)?;
    Ok(total)
}

/// [`protect_with`] without the header protection, which the caller
/// applies later ([`apply_mask`]): a batch of packets computes all its
/// masks in one call. Returns the packet's length.
#[inline]
pub fn seal(
    buf: &mut [u8],
    pn_off: usize,
    pn_len: usize,
    pn: u64,
    payload_len: usize,
    packet: &PacketKey,
) -> Result<usize> {
    let hdr_len = pn_off + pn_len;
    if !(1..=MAX_PKT_NUM_LEN).contains(&pn_len) || buf.len() < hdr_len + payload_len + TAG_LEN {
        return Err(Error::BufferTooShort);
    }
    let (hdr, body) = buf.split_at_mut(hdr_len);
    let sealed = packet.seal_in_place(pn, hdr, body, payload_len)?;
    Ok(hdr_len + sealed)
}

/// What [`unprotect`] recovered from a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unprotected {
    /// The full packet number.
    pub pn: u64,
    /// Length of the packet-number field.
    pub pn_len: usize,
    /// The key phase bit (short headers only).
    pub key_phase: bool,
    /// Where the plaintext payload starts in the buffer.
    pub payload_off: usize,
    /// Length of the plaintext payload.
    pub payload_len: usize,
}

/// Removes header protection and decrypts the packet in `buf` (exactly one
/// packet: for long headers, up to the end its Length field gives) in place.
/// `pn_off` is where the packet number starts; `largest_pn` is the largest
/// packet number received in the space so far.
#[inline]
pub fn unprotect(
    buf: &mut [u8],
    pn_off: usize,
    largest_pn: Option<u64>,
    keys: &DirectionalKeys,
) -> Result<Unprotected> {
    let (pn, pn_len, key_phase) = unprotect_header(buf, pn_off, largest_pn, &keys.hp)?;
    unprotect_payload(buf, pn_off, pn, pn_len, key_phase, &keys.packet)
}

/// First half of [`unprotect`]: removes header protection and decodes the
/// packet number, so that the caller can choose the packet key by key
/// phase. Returns (pn, pn_len, key_phase).
#[inline]
pub fn unprotect_header(
    buf: &mut [u8],
    pn_off: usize,
    largest_pn: Option<u64>,
    hp: &HeaderProtectionKey,
) -> Result<(u64, usize, bool)> {
    let mask = hp.mask(&sample(buf, pn_off)?);
    unprotect_header_masked(buf, pn_off, largest_pn, &mask)
}

/// [`unprotect_header`] with a mask computed beforehand (a batch of
/// datagrams, see `HeaderProtectionBatch`) from this packet's sample.
#[inline]
pub fn unprotect_header_masked(
    buf: &mut [u8],
    pn_off: usize,
    largest_pn: Option<u64>,
    mask: &[u8; 5],
) -> Result<(u64, usize, bool)> {
    // The sample's place: a packet shorter than that has no mask.
    if pn_off == 0 || buf.len() < pn_off + MAX_PKT_NUM_LEN + HP_SAMPLE_LEN {
        return Err(Error::InvalidPacket);
    }
    let pn_len = remove_mask(buf, pn_off, mask);
    let mut truncated = 0u64;
    for b in &buf[pn_off..pn_off + pn_len] {
        truncated = (truncated << 8) | u64::from(*b);
    }
    let pn = decode_pkt_num(largest_pn, truncated, pn_len);
    let key_phase = buf[0] & FORM_BIT == 0 && buf[0] & KEY_PHASE_BIT != 0;
    Ok((pn, pn_len, key_phase))
}

/// Second half of [`unprotect`]: decrypts the payload in place.
#[inline]
pub fn unprotect_payload(
    buf: &mut [u8],
    pn_off: usize,
    pn: u64,
    pn_len: usize,
    key_phase: bool,
    packet: &PacketKey,
) -> Result<Unprotected> {
    let hdr_len = pn_off + pn_len;
    let (hdr, body) = buf.split_at_mut(hdr_len);
    let payload_len = packet.open_in_place(pn, hdr, body)?;
    Ok(Unprotected {
        pn,
        pn_len,
        key_phase,
        payload_off: hdr_len,
        payload_len,
    })
}

/// Reserved bits of the first byte after header protection is removed:
/// they MUST be zero (RFC 9000 §17.2, §17.3.1).
pub fn reserved_bits(first: u8) -> u8 {
    if first & FORM_BIT != 0 {
        first & 0x0c
    } else {
        first & 0x18
    }
}

#[cfg(test)]
mod tests;

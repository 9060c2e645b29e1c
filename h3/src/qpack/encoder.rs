//! The QPACK encoder (RFC 9204 §2.1): encodes header lists, inserting into
//! the dynamic table through encoder-stream instructions, and tracks the
//! decoder's acknowledgments so that it never evicts an entry that an
//! unacknowledged field section references and never blocks more streams
//! than the peer allows.

use std::collections::{HashMap, VecDeque};

use super::dynamic_table::DynamicTable;
use super::field_lines::{self as fl};
use super::instructions::{self as ins, DecoderInstruction};
use super::static_table::{self, StaticMatch};
use super::{entry_size, Error, Result};
use crate::NameValue;

/// Our default cap on the dynamic table we keep for the peer's decoder,
/// whatever larger capacity it allows.
pub const DEFAULT_CAPACITY_LIMIT: u64 = 4096;

/// An encoded field section that the decoder has not acknowledged yet and
/// that references the dynamic table.
#[derive(Clone, Copy, Debug)]
struct Section {
    required_insert_count: u64,
    /// Smallest absolute index it references.
    min_ref: u64,
}

/// Per-section bookkeeping while encoding.
#[derive(Clone, Copy, Debug)]
struct SectionState {
    base: u64,
    required_insert_count: u64,
    min_ref: u64,
    /// Whether this section may reference entries the decoder has not
    /// acknowledged (decided once, lazily).
    may_block: Option<bool>,
}

/// The encoder half of QPACK.
#[derive(Debug)]
pub struct Encoder {
    table: DynamicTable,
    /// The peer decoder's SETTINGS_QPACK_MAX_TABLE_CAPACITY.
    peer_max_table_capacity: u64,
    /// The peer decoder's SETTINGS_QPACK_BLOCKED_STREAMS.
    max_blocked_streams: u64,
    capacity_limit: u64,
    huffman: bool,
    known_received_count: u64,
    outstanding: HashMap<u64, VecDeque<Section>>,
    /// Cached minimum of `min_ref` over `outstanding`; `None` when stale.
    min_outstanding: Option<u64>,
    /// Encoder-stream bytes waiting to be sent.
    pending: Vec<u8>,
    /// Unparsed tail of the decoder stream.
    decoder_stream_buf: Vec<u8>,
    /// Field lines of the section being encoded.
    lines: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// An encoder that uses only the static table until the peer's SETTINGS
    /// are known (RFC 9204 §3.2.3: the maximum capacity is 0 until then).
    pub fn new() -> Self {
        Encoder {
            table: DynamicTable::new(),
            peer_max_table_capacity: 0,
            max_blocked_streams: 0,
            capacity_limit: DEFAULT_CAPACITY_LIMIT,
            huffman: true,
            known_received_count: 0,
            outstanding: HashMap::new(),
            min_outstanding: Some(u64::MAX),
            pending: Vec::new(),
            decoder_stream_buf: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// Caps the dynamic table we use (memory on both sides); call before
    /// [`Self::on_peer_settings`].
    pub fn set_capacity_limit(&mut self, limit: u64) {
        self.capacity_limit = limit;
    }

    /// Whether string literals are Huffman-coded when that is shorter
    /// (default on).
    pub fn set_huffman(&mut self, on: bool) {
        self.huffman = on;
    }

    /// Applies the peer's SETTINGS_QPACK_MAX_TABLE_CAPACITY and
    /// SETTINGS_QPACK_BLOCKED_STREAMS, and starts using a dynamic table of
    /// `min(max_table_capacity, limit)` bytes.
    pub fn on_peer_settings(
        &mut self,
        max_table_capacity: u64,
        blocked_streams: u64,
    ) -> Result<()> {
        self.peer_max_table_capacity = max_table_capacity;
        self.max_blocked_streams = blocked_streams;
        let cap = max_table_capacity.min(self.capacity_limit);
        if cap != self.table.capacity() {
            self.set_capacity(cap)?;
        }
        Ok(())
    }

    /// Changes the dynamic table capacity and queues Set Dynamic Table
    /// Capacity (RFC 9204 §4.3.1).
    pub fn set_capacity(&mut self, capacity: u64) -> Result<()> {
        // §4.3.1: "The new capacity MUST be lower than or equal to the limit"
        // the decoder advertised.
        if capacity > self.peer_max_table_capacity {
            return Err(Error::Internal("capacity above the peer's maximum"));
        }
        // §4.3.1: reducing the capacity "MUST NOT cause the eviction of
        // entries that are not evictable".
        let mut size = self.table.size();
        let limit = self.evict_limit(u64::MAX);
        for (abs, s) in self.table.sizes() {
            if size <= capacity {
                break;
            }
            if abs >= limit {
                return Err(Error::Internal("capacity would evict a referenced entry"));
            }
            size -= s;
        }
        self.table.set_capacity(capacity);
        ins::emit_set_capacity(capacity, &mut self.pending);
        Ok(())
    }

    /// The dynamic table as the encoder sees it.
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// The Known Received Count (RFC 9204 §2.1.4).
    pub fn known_received_count(&self) -> u64 {
        self.known_received_count
    }

    /// Number of streams with an unacknowledged section that references an
    /// entry the decoder may not have yet.
    pub fn blocked_streams(&self) -> u64 {
        let krc = self.known_received_count;
        self.outstanding
            .values()
            .filter(|q| q.iter().any(|s| s.required_insert_count > krc))
            .count() as u64
    }

    fn stream_is_blocking(&self, stream_id: u64) -> bool {
        let krc = self.known_received_count;
        self.outstanding
            .get(&stream_id)
            .is_some_and(|q| q.iter().any(|s| s.required_insert_count > krc))
    }

    fn min_outstanding(&mut self) -> u64 {
        if let Some(m) = self.min_outstanding {
            return m;
        }
        let m = self
            .outstanding
            .values()
            .flatten()
            .map(|s| s.min_ref)
            .min()
            .unwrap_or(u64::MAX);
        self.min_outstanding = Some(m);
        m
    }

    /// Entries with an absolute index below this are evictable (RFC 9204
    /// §2.1.1): acknowledged (below the Known Received Count) and not
    /// referenced by an unacknowledged section nor by the one being built.
    fn evict_limit(&mut self, section_min_ref: u64) -> u64 {
        self.known_received_count
            .min(self.min_outstanding())
            .min(section_min_ref)
    }

    /// Whether an entry of `size` bytes can be inserted now without evicting
    /// anything that is not evictable.
    fn can_insert(&mut self, size: u64, section_min_ref: u64) -> bool {
        match self.table.evictions_for(size) {
            Some(first_kept) => {
                first_kept <= self.table.first_index()
                    || first_kept <= self.evict_limit(section_min_ref)
            }
            None => false,
        }
    }

    /// Inserts `name: value` without referencing it (a speculative insert,
    /// RFC 9204 Appendix B.3). Returns its absolute index.
    pub fn insert(&mut self, name: &[u8], value: &[u8]) -> Result<u64> {
        self.insert_entry(name, value, u64::MAX)
            .ok_or(Error::Internal("no room in the dynamic table"))
    }

    /// Queues the best insert instruction for `name: value` and applies it.
    fn insert_entry(&mut self, name: &[u8], value: &[u8], section_min_ref: u64) -> Option<u64> {
        let size = entry_size(name, value);
        if !self.can_insert(size, section_min_ref) {
            return None;
        }
        let insert_count = self.table.insert_count();
        match static_table::find(name, value) {
            StaticMatch::Full(i) | StaticMatch::Name(i) => {
                ins::emit_insert_with_name_ref(true, i, value, self.huffman, &mut self.pending)
            }
            StaticMatch::None => match self.table.find(name, value, 0).1 {
                // The referenced entry is read before any eviction (§3.2.2).
                Some(abs) => ins::emit_insert_with_name_ref(
                    false,
                    insert_count - 1 - abs,
                    value,
                    self.huffman,
                    &mut self.pending,
                ),
                None => {
                    ins::emit_insert_with_literal_name(name, value, self.huffman, &mut self.pending)
                }
            },
        }
        self.table.insert(name, value)
    }

    /// Whether the section may reference `abs`: acknowledged entries always;
    /// others only if the stream may block (RFC 9204 §2.1.2).
    fn can_reference(&self, abs: u64, st: &mut SectionState, stream_id: u64) -> bool {
        if abs < self.known_received_count {
            return true;
        }
        *st.may_block.get_or_insert_with(|| {
            self.stream_is_blocking(stream_id) || self.blocked_streams() < self.max_blocked_streams
        })
    }

    fn note_ref(st: &mut SectionState, abs: u64) {
        st.required_insert_count = st.required_insert_count.max(abs + 1);
        st.min_ref = st.min_ref.min(abs);
    }

    /// Whether `abs` is in the draining part of the table: once the table is
    /// more than half full, the oldest half of its bytes. References to such
    /// entries are replaced by a fresh Duplicate so the old copy can go.
    fn is_draining(&self, abs: u64) -> bool {
        let size = self.table.size();
        if size * 2 <= self.table.capacity() {
            return false;
        }
        let mut cumulative = 0;
        for (a, s) in self.table.sizes() {
            cumulative += s;
            if a == abs {
                return cumulative * 2 <= size;
            }
        }
        false
    }

    /// Before Base is fixed: duplicates draining entries that the section
    /// is about to reference (RFC 9204 §2.1.1.1).
    fn duplicate_draining<T: NameValue>(
        &mut self,
        headers: &[T],
        st: &mut SectionState,
        stream_id: u64,
    ) {
        for h in headers {
            let (name, value) = (h.name(), h.value());
            if matches!(static_table::find(name, value), StaticMatch::Full(_)) {
                continue;
            }
            let Some(abs) = self.table.find(name, value, 0).0 else {
                continue;
            };
            if !self.is_draining(abs)
                || !self.can_reference(self.table.insert_count(), st, stream_id)
            {
                continue;
            }
            let Some(size) = self.table.size_of(abs) else {
                continue;
            };
            if !self.can_insert(size, u64::MAX) {
                continue;
            }
            let relative = self.table.insert_count() - 1 - abs;
            ins::emit_duplicate(relative, &mut self.pending);
            self.table.insert(name, value);
        }
    }

    /// Encodes `headers` for `stream_id` as one field section appended to
    /// `out`. Encoder-stream instructions it needs are queued for
    /// [`Self::emit_encoder_stream`]; they must reach the peer for the
    /// section to decode.
    pub fn encode<T: NameValue>(
        &mut self,
        stream_id: u64,
        headers: &[T],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let use_dynamic = self.table.capacity() > 0;
        let mut st = SectionState {
            base: 0,
            required_insert_count: 0,
            min_ref: u64::MAX,
            may_block: None,
        };
        if use_dynamic {
            self.duplicate_draining(headers, &mut st, stream_id);
        }
        st.base = self.table.insert_count();
        let mut lines = std::mem::take(&mut self.lines);
        lines.clear();
        for h in headers {
            self.encode_line(
                h.name(),
                h.value(),
                &mut st,
                stream_id,
                use_dynamic,
                &mut lines,
            );
        }
        fl::emit_prefix(
            st.required_insert_count,
            st.base,
            self.peer_max_table_capacity,
            out,
        );
        out.extend_from_slice(&lines);
        self.lines = lines;
        if st.required_insert_count > 0 {
            let s = Section {
                required_insert_count: st.required_insert_count,
                min_ref: st.min_ref,
            };
            self.outstanding.entry(stream_id).or_default().push_back(s);
            if let Some(m) = self.min_outstanding {
                self.min_outstanding = Some(m.min(st.min_ref));
            }
        }
        Ok(())
    }

    /// Emits a reference to dynamic entry `abs`, relative or post-base.
    fn emit_dynamic_ref(st: &mut SectionState, abs: u64, lines: &mut Vec<u8>) {
        if abs < st.base {
            fl::emit_indexed(false, st.base - 1 - abs, lines);
        } else {
            fl::emit_indexed_post_base(abs - st.base, lines);
        }
        Self::note_ref(st, abs);
    }

    fn encode_line(
        &mut self,
        name: &[u8],
        value: &[u8],
        st: &mut SectionState,
        stream_id: u64,
        use_dynamic: bool,
        lines: &mut Vec<u8>,
    ) {
        let stat = static_table::find(name, value);
        if let StaticMatch::Full(i) = stat {
            fl::emit_indexed(true, i, lines);
            return;
        }
        let never_indexed = is_sensitive(name);
        let huffman = self.huffman;
        if use_dynamic && !never_indexed {
            let (full, _) = self.table.find(name, value, 0);
            match full {
                Some(abs) if self.can_reference(abs, st, stream_id) => {
                    return Self::emit_dynamic_ref(st, abs, lines);
                }
                Some(_) => {}
                None => {
                    let size = entry_size(name, value);
                    // An entry above 3/4 of the table would flush it.
                    if size * 4 <= self.table.capacity() * 3 {
                        if let Some(abs) = self.insert_entry(name, value, st.min_ref) {
                            if self.can_reference(abs, st, stream_id) {
                                return Self::emit_dynamic_ref(st, abs, lines);
                            }
                        }
                    }
                }
            }
        }
        if let StaticMatch::Name(i) = stat {
            return fl::emit_literal_name_ref(never_indexed, true, i, value, huffman, lines);
        }
        if use_dynamic {
            if let Some(abs) = self.table.find(name, value, 0).1 {
                if self.can_reference(abs, st, stream_id) {
                    if abs < st.base {
                        let rel = st.base - 1 - abs;
                        fl::emit_literal_name_ref(never_indexed, false, rel, value, huffman, lines);
                    } else {
                        let pb = abs - st.base;
                        fl::emit_literal_post_base_name_ref(
                            never_indexed,
                            pb,
                            value,
                            huffman,
                            lines,
                        );
                    }
                    return Self::note_ref(st, abs);
                }
            }
        }
        fl::emit_literal_name(never_indexed, name, value, huffman, lines);
    }

    /// Processes bytes read from the peer's decoder stream; instructions may
    /// be split anywhere.
    pub fn feed_decoder_stream(&mut self, data: &[u8]) -> Result<()> {
        let mut buf = std::mem::take(&mut self.decoder_stream_buf);
        buf.extend_from_slice(data);
        let mut off = 0;
        let r = loop {
            match DecoderInstruction::parse(&buf[off..]) {
                Ok(Some((instr, used))) => {
                    off += used;
                    if let Err(e) = self.apply(instr) {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        // After an error the connection is closing; keep nothing.
        if r.is_ok() {
            buf.drain(..off);
            self.decoder_stream_buf = buf;
        }
        r
    }

    fn apply(&mut self, instr: DecoderInstruction) -> Result<()> {
        tracing::trace!(?instr, "qpack encoder: decoder instruction");
        match instr {
            DecoderInstruction::SectionAck(stream_id) => {
                // §4.4.1: an acknowledgment for a stream whose every section
                // was already acknowledged "MUST" be a
                // QPACK_DECODER_STREAM_ERROR.
                let q = self
                    .outstanding
                    .get_mut(&stream_id)
                    .ok_or(Error::DecoderStream(
                        "Section Acknowledgment without a section",
                    ))?;
                let s = q.pop_front().ok_or(Error::DecoderStream(
                    "Section Acknowledgment without a section",
                ))?;
                if q.is_empty() {
                    self.outstanding.remove(&stream_id);
                }
                self.known_received_count = self.known_received_count.max(s.required_insert_count);
                self.min_outstanding = None;
            }
            DecoderInstruction::StreamCancellation(stream_id) => {
                if self.outstanding.remove(&stream_id).is_some() {
                    self.min_outstanding = None;
                }
            }
            DecoderInstruction::InsertCountIncrement(n) => {
                // §4.4.3: a zero increment, or one beyond what was sent,
                // "MUST" be a QPACK_DECODER_STREAM_ERROR.
                if n == 0 {
                    return Err(Error::DecoderStream("Insert Count Increment of zero"));
                }
                let krc = self
                    .known_received_count
                    .checked_add(n)
                    .filter(|&k| k <= self.table.insert_count())
                    .ok_or(Error::DecoderStream(
                        "Insert Count Increment beyond the inserts",
                    ))?;
                self.known_received_count = krc;
            }
        }
        Ok(())
    }

    /// Appends the queued encoder-stream bytes to `out`.
    pub fn emit_encoder_stream(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
    }

    /// Whether [`Self::emit_encoder_stream`] would write anything.
    pub fn has_encoder_stream_data(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// Fields whose values must not enter a compression context (RFC 9204
/// §7.1.3): sent as literals with the N bit.
fn is_sensitive(name: &[u8]) -> bool {
    matches!(name, b"authorization" | b"proxy-authorization")
}

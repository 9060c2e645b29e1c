//! The QPACK decoder (RFC 9204 §2.2): applies the peer encoder's
//! instructions to its dynamic table, decodes field sections, holds back
//! blocked ones, and produces decoder-stream instructions.

use tarte::octets::Octets;

use super::dynamic_table::DynamicTable;
use super::field_lines::{self, FieldLine};
use super::instructions::{DecoderInstruction, EncoderInstruction};
use super::{entry_size, static_table, Error, Result};
use crate::Header;

/// What decoding a field section gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The field lines, in order.
    Headers(Vec<Header>),
    /// The section needs entries the decoder has not received yet (RFC 9204
    /// §2.2.1). The decoder kept a copy; it comes back from
    /// [`Decoder::poll_unblocked`] once the inserts arrive.
    Blocked,
}

/// A field section waiting for inserts.
#[derive(Debug)]
struct BlockedSection {
    stream_id: u64,
    required_insert_count: u64,
    section: Vec<u8>,
}

/// The decoder half of QPACK.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// Our SETTINGS_QPACK_MAX_TABLE_CAPACITY.
    max_table_capacity: u64,
    /// Our SETTINGS_QPACK_BLOCKED_STREAMS.
    max_blocked_streams: usize,
    /// Our SETTINGS_MAX_FIELD_SECTION_SIZE, if any.
    max_field_section_size: Option<u64>,
    /// The Insert Count the encoder knows we have (through acknowledgments
    /// and increments we have queued).
    known_received_count: u64,
    blocked: Vec<BlockedSection>,
    /// Unparsed tail of the encoder stream (an incomplete instruction).
    encoder_stream_buf: Vec<u8>,
    /// Decoder-stream bytes waiting to be sent.
    pending: Vec<u8>,
}

impl Decoder {
    /// A decoder that advertises `max_table_capacity` and
    /// `max_blocked_streams` in its SETTINGS.
    pub fn new(max_table_capacity: u64, max_blocked_streams: u64) -> Self {
        Decoder {
            table: DynamicTable::new(),
            max_table_capacity,
            max_blocked_streams: usize::try_from(max_blocked_streams).unwrap_or(usize::MAX),
            max_field_section_size: None,
            known_received_count: 0,
            blocked: Vec::new(),
            encoder_stream_buf: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Limits decoded field sections to `size` bytes as RFC 9114 §4.2.2
    /// counts them (name + value + 32 per line).
    pub fn set_max_field_section_size(&mut self, size: Option<u64>) {
        self.max_field_section_size = size;
    }

    /// The dynamic table, read-only.
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// Number of streams currently blocked.
    pub fn blocked_streams(&self) -> usize {
        self.blocked.len()
    }

    /// The longest string literal we accept on the encoder stream: an entry
    /// has to fit the capacity, and Huffman coding can make a string up to
    /// 30/8 times longer than its decoding.
    fn max_encoder_string(&self) -> usize {
        let cap = usize::try_from(self.max_table_capacity).unwrap_or(usize::MAX);
        cap.saturating_mul(4).saturating_add(8)
    }

    /// Processes bytes read from the peer's encoder stream. Instructions may
    /// be split anywhere; an incomplete tail is kept (its size is bounded by
    /// the table capacity). Afterwards, newly decodable blocked sections are
    /// available from [`Self::poll_unblocked`].
    pub fn feed_encoder_stream(&mut self, mut data: &[u8]) -> Result<()> {
        let max_string = self.max_encoder_string();
        // Complete a previously buffered instruction first.
        if !self.encoder_stream_buf.is_empty() {
            let mut buf = std::mem::take(&mut self.encoder_stream_buf);
            let old = buf.len();
            buf.extend_from_slice(data);
            match EncoderInstruction::parse(&buf, max_string)? {
                None => {
                    self.encoder_stream_buf = buf;
                    return Ok(());
                }
                Some((instr, used)) => {
                    self.apply(instr)?;
                    // `used > old`: the buffered tail alone was incomplete.
                    data = &data[used - old..];
                }
            }
        }
        while !data.is_empty() {
            match EncoderInstruction::parse(data, max_string)? {
                None => {
                    self.encoder_stream_buf.extend_from_slice(data);
                    break;
                }
                Some((instr, used)) => {
                    self.apply(instr)?;
                    data = &data[used..];
                }
            }
        }
        Ok(())
    }

    /// Applies one encoder instruction to the table.
    fn apply(&mut self, instr: EncoderInstruction) -> Result<()> {
        tracing::trace!(?instr, "qpack decoder: encoder instruction");
        match instr {
            EncoderInstruction::SetCapacity(cap) => {
                // §4.3.1: "The decoder MUST treat a new dynamic table
                // capacity value that exceeds this limit as a connection
                // error of type QPACK_ENCODER_STREAM_ERROR."
                if cap > self.max_table_capacity {
                    return Err(Error::EncoderStream("capacity above the maximum"));
                }
                self.table.set_capacity(cap);
            }
            EncoderInstruction::InsertWithNameRef {
                is_static,
                index,
                value,
            } => {
                let name = if is_static {
                    static_table::get(index)
                        .ok_or(Error::EncoderStream("static name index out of range"))?
                        .0
                        .to_vec()
                } else {
                    self.relative(index)?.0.to_vec()
                };
                self.insert(&name, &value)?;
            }
            EncoderInstruction::InsertWithLiteralName { name, value } => {
                self.insert(&name, &value)?;
            }
            EncoderInstruction::Duplicate(index) => {
                let (name, value) = self.relative(index)?;
                let (name, value) = (name.to_vec(), value.to_vec());
                self.insert(&name, &value)?;
            }
        }
        Ok(())
    }

    /// Resolves a relative index on the encoder stream (RFC 9204 §3.2.5):
    /// absolute = Insert Count - 1 - relative.
    fn relative(&self, index: u64) -> Result<(&[u8], &[u8])> {
        // §2.2.3: a reference "to a dynamic table entry that has already
        // been evicted" in an encoder instruction "MUST" be a
        // QPACK_ENCODER_STREAM_ERROR; so is one that does not exist yet.
        let abs = self
            .table
            .insert_count()
            .checked_sub(1)
            .and_then(|v| v.checked_sub(index))
            .ok_or(Error::EncoderStream("relative index beyond the table"))?;
        self.table
            .get(abs)
            .ok_or(Error::EncoderStream("reference to an evicted entry"))
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) -> Result<()> {
        // §3.2.2: "It is an error if the encoder attempts to add an entry
        // that is larger than the dynamic table capacity; the decoder MUST
        // treat this as a connection error of type
        // QPACK_ENCODER_STREAM_ERROR."
        if entry_size(name, value) > self.table.capacity() {
            return Err(Error::EncoderStream("entry larger than the capacity"));
        }
        self.table
            .insert(name, value)
            .ok_or(Error::EncoderStream("insert failed"))?;
        Ok(())
    }

    /// Decodes the encoded field section `section` received on `stream_id`.
    pub fn decode(&mut self, stream_id: u64, section: &[u8]) -> Result<Decoded> {
        let mut b = Octets::with_slice(section);
        let (encoded_ric, sign, delta) = field_lines::parse_prefix(&mut b)?;
        let ric = field_lines::decode_required_insert_count(
            encoded_ric,
            self.table.insert_count(),
            self.max_table_capacity,
        )?;
        let base = field_lines::base(ric, sign, delta)?;
        if ric > self.table.insert_count() {
            if self.blocked.iter().any(|s| s.stream_id == stream_id) {
                return Err(Error::Internal("stream already has a blocked section"));
            }
            // §2.2.1: "If the decoder encounters more blocked streams than it
            // promised to support, it MUST treat this as a connection error of
            // type QPACK_DECOMPRESSION_FAILED."
            if self.blocked.len() >= self.max_blocked_streams {
                return Err(Error::DecompressionFailed("too many blocked streams"));
            }
            tracing::trace!(stream_id, ric, "qpack decoder: section blocked");
            self.blocked.push(BlockedSection {
                stream_id,
                required_insert_count: ric,
                section: section.to_vec(),
            });
            return Ok(Decoded::Blocked);
        }
        let headers = self.decode_lines(&mut b, ric, base)?;
        self.acknowledge(stream_id, ric);
        Ok(Decoded::Headers(headers))
    }

    /// After a section with dynamic references was decoded: Section
    /// Acknowledgment (§4.4.1), which also tells the encoder we have
    /// everything up to its Required Insert Count.
    fn acknowledge(&mut self, stream_id: u64, ric: u64) {
        if ric == 0 {
            return;
        }
        DecoderInstruction::SectionAck(stream_id).emit(&mut self.pending);
        self.known_received_count = self.known_received_count.max(ric);
    }

    fn decode_lines(&self, b: &mut Octets<'_>, ric: u64, base: u64) -> Result<Vec<Header>> {
        let mut headers = Vec::new();
        let mut size = 0u64;
        let mut max_ref: Option<u64> = None;
        let max_string = b.cap();
        while b.cap() > 0 {
            let line = FieldLine::parse(b, max_string)?;
            let (name, value, abs) = self.resolve(line, ric, base)?;
            if let Some(abs) = abs {
                max_ref = Some(max_ref.map_or(abs, |m| m.max(abs)));
            }
            size += entry_size(&name, &value);
            if let Some(limit) = self.max_field_section_size {
                if size > limit {
                    return Err(Error::FieldSectionTooLarge { limit });
                }
            }
            headers.push(Header::from_vecs(name, value));
        }
        // §2.2.1: the Required Insert Count must be the smallest that allows
        // decoding; a smaller one is caught per reference in `resolve`, a
        // larger one "MAY" be an error and we treat it as one.
        if ric > 0 && max_ref.map(|m| m + 1) != Some(ric) {
            return Err(Error::DecompressionFailed(
                "Required Insert Count larger than needed",
            ));
        }
        Ok(headers)
    }

    /// The entry at a dynamic absolute index referenced from a field
    /// section.
    fn dynamic(&self, abs: Option<u64>, ric: u64) -> Result<(&[u8], &[u8], u64)> {
        // §2.2.3: a reference to an evicted entry or one at or above the
        // Required Insert Count "MUST" be QPACK_DECOMPRESSION_FAILED.
        let abs = abs.filter(|&a| a < ric).ok_or(Error::DecompressionFailed(
            "dynamic reference outside the section's range",
        ))?;
        let (n, v) = self
            .table
            .get(abs)
            .ok_or(Error::DecompressionFailed("reference to an evicted entry"))?;
        Ok((n, v, abs))
    }

    /// Turns a field line into name and value, and the dynamic absolute
    /// index it used.
    fn resolve(
        &self,
        line: FieldLine,
        ric: u64,
        base: u64,
    ) -> Result<(Vec<u8>, Vec<u8>, Option<u64>)> {
        let relative = |i: u64| base.checked_sub(1).and_then(|v| v.checked_sub(i));
        let post_base = |i: u64| base.checked_add(i);
        let static_entry = |i: u64| {
            static_table::get(i).ok_or(Error::DecompressionFailed("static index out of range"))
        };
        Ok(match line {
            FieldLine::IndexedStatic(i) => {
                let (n, v) = static_entry(i)?;
                (n.to_vec(), v.to_vec(), None)
            }
            FieldLine::IndexedDynamic(i) => {
                let (n, v, abs) = self.dynamic(relative(i), ric)?;
                (n.to_vec(), v.to_vec(), Some(abs))
            }
            FieldLine::IndexedPostBase(i) => {
                let (n, v, abs) = self.dynamic(post_base(i), ric)?;
                (n.to_vec(), v.to_vec(), Some(abs))
            }
            FieldLine::LiteralNameRef {
                is_static: true,
                index,
                value,
                ..
            } => (static_entry(index)?.0.to_vec(), value, None),
            FieldLine::LiteralNameRef {
                is_static: false,
                index,
                value,
                ..
            } => {
                let (n, _, abs) = self.dynamic(relative(index), ric)?;
                (n.to_vec(), value, Some(abs))
            }
            FieldLine::LiteralPostBaseNameRef { index, value, .. } => {
                let (n, _, abs) = self.dynamic(post_base(index), ric)?;
                (n.to_vec(), value, Some(abs))
            }
            FieldLine::LiteralName { name, value, .. } => (name, value, None),
        })
    }

    /// Returns one previously blocked section that can now be decoded, with
    /// its stream ID and the decoding result; `None` when there is none.
    pub fn poll_unblocked(&mut self) -> Option<(u64, Result<Vec<Header>>)> {
        let insert_count = self.table.insert_count();
        let pos = self
            .blocked
            .iter()
            .position(|s| s.required_insert_count <= insert_count)?;
        let s = self.blocked.swap_remove(pos);
        let mut b = Octets::with_slice(&s.section);
        let r = field_lines::parse_prefix(&mut b)
            .and_then(|(_, sign, delta)| field_lines::base(s.required_insert_count, sign, delta))
            .and_then(|base| self.decode_lines(&mut b, s.required_insert_count, base));
        if r.is_ok() {
            self.acknowledge(s.stream_id, s.required_insert_count);
        }
        Some((s.stream_id, r))
    }

    /// The application abandoned `stream_id` (reset, or stopped reading)
    /// before all its field sections were decoded: forget a blocked section
    /// and queue a Stream Cancellation (RFC 9204 §4.4.2), which a decoder
    /// with maximum capacity 0 may omit.
    pub fn cancel_stream(&mut self, stream_id: u64) {
        self.blocked.retain(|s| s.stream_id != stream_id);
        if self.max_table_capacity > 0 {
            DecoderInstruction::StreamCancellation(stream_id).emit(&mut self.pending);
        }
    }

    /// Appends the decoder-stream bytes to send: queued acknowledgments and
    /// cancellations, then an Insert Count Increment for inserts the
    /// encoder does not know we have (RFC 9204 §4.4.3).
    pub fn emit_decoder_stream(&mut self, out: &mut Vec<u8>) {
        let increment = self.table.insert_count() - self.known_received_count;
        if increment > 0 {
            DecoderInstruction::InsertCountIncrement(increment).emit(&mut self.pending);
            self.known_received_count += increment;
        }
        out.append(&mut self.pending);
    }

    /// Whether [`Self::emit_decoder_stream`] would write anything.
    pub fn has_decoder_stream_data(&self) -> bool {
        !self.pending.is_empty() || self.table.insert_count() > self.known_received_count
    }
}

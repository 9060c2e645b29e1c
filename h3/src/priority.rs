//! Extensible priorities (RFC 9218): the `priority` header field and the
//! PRIORITY_UPDATE Priority Field Value, a Structured Field dictionary
//! (RFC 8941 §3.2) with urgency `u` (0..=7, default 3) and incremental `i`
//! (boolean, default false).
//!
//! Parsing never fails: RFC 9218 §4 says unknown parameters, out-of-range
//! values and values of unexpected types "MUST be ignored", and a value that
//! is not a valid dictionary is ignored as a whole, so the defaults apply.

/// Default urgency (RFC 9218 §4.1).
pub const DEFAULT_URGENCY: u8 = 3;

/// The priority of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Priority {
    /// Urgency, 0 (highest) to 7 (lowest).
    pub urgency: u8,
    /// Whether the response can be used incrementally.
    pub incremental: bool,
}

impl Default for Priority {
    fn default() -> Self {
        Priority {
            urgency: DEFAULT_URGENCY,
            incremental: false,
        }
    }
}

/// A bare item of a Structured Field (RFC 8941 §3.3); only the kinds the
/// priority parameters use keep their value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    Integer(i64),
    Boolean(bool),
    Other,
}

/// A small RFC 8941 parser over ASCII bytes.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_sp(&mut self) {
        while self.eat(b' ') {}
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
    fn key(&mut self) -> Option<&[u8]> {
        let start = self.i;
        if !matches!(self.peek(), Some(b'a'..=b'z' | b'*')) {
            return None;
        }
        while matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')
        ) {
            self.i += 1;
        }
        Some(&self.s[start..self.i])
    }

    /// RFC 8941 §4.2.4 (integers and decimals).
    fn number(&mut self) -> Option<Item> {
        let neg = self.eat(b'-');
        let start = self.i;
        let mut value: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            value = value * 10 + i64::from(c - b'0');
            self.i += 1;
            if self.i - start > 15 {
                return None;
            }
        }
        let int_digits = self.i - start;
        if int_digits == 0 {
            return None;
        }
        if self.eat(b'.') {
            if int_digits > 12 {
                return None;
            }
            let frac = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            if !(1..=3).contains(&(self.i - frac)) {
                return None;
            }
            return Some(Item::Other);
        }
        Some(Item::Integer(if neg { -value } else { value }))
    }

    /// RFC 8941 §4.2.3.1.
    fn bare_item(&mut self) -> Option<Item> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => {
                self.i += 1;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.i += 1;
                            return Some(Item::Other);
                        }
                        b'\\' => {
                            self.i += 1;
                            if !matches!(self.peek()?, b'"' | b'\\') {
                                return None;
                            }
                            self.i += 1;
                        }
                        0x20..=0x7e => self.i += 1,
                        _ => return None,
                    }
                }
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'*' => {
                self.i += 1;
                while matches!(
                    self.peek(),
                    Some(
                        b'a'..=b'z'
                        | b'A'..=b'Z'
                        | b'0'..=b'9'
                        | b'!'
                        | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                        | b':'
                        | b'/',
                    )
                ) {
                    self.i += 1;
                }
                Some(Item::Other)
            }
            b':' => {
                self.i += 1;
                while matches!(self.peek()?, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'+' | b'/' | b'=')
                {
                    self.i += 1;
                }
                self.eat(b':').then_some(Item::Other)
            }
            b'?' => {
                self.i += 1;
                let b = match self.peek()? {
                    b'0' => false,
                    b'1' => true,
                    _ => return None,
                };
                self.i += 1;
                Some(Item::Boolean(b))
            }
            _ => None,
        }
    }

    /// RFC 8941 §4.2.3.2; parameter values are not needed.
    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    /// An item or inner list (RFC 8941 §4.2.1.1); inner lists count as
    /// [`Item::Other`].
    fn member_value(&mut self) -> Option<Item> {
        if self.eat(b'(') {
            loop {
                self.skip_sp();
                if self.eat(b')') {
                    self.parameters()?;
                    return Some(Item::Other);
                }
                self.bare_item()?;
                self.parameters()?;
                if !matches!(self.peek()?, b' ' | b')') {
                    return None;
                }
            }
        }
        let item = self.bare_item()?;
        self.parameters()?;
        Some(item)
    }

    /// RFC 8941 §4.2.2, calling `f` for each member (later duplicates
    /// override earlier ones as the caller applies them in order).
    fn dictionary(&mut self, mut f: impl FnMut(&[u8], Item)) -> Option<()> {
        self.skip_sp();
        if self.i == self.s.len() {
            return Some(());
        }
        loop {
            let start = self.i;
            self.key()?;
            let end = self.i;
            let item = if self.eat(b'=') {
                self.member_value()?
            } else {
                self.parameters()?;
                Item::Boolean(true)
            };
            f(&self.s[start..end], item);
            self.skip_ows();
            if self.i == self.s.len() {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
            self.skip_ows();
            // A trailing comma is invalid.
            if self.i == self.s.len() {
                return None;
            }
        }
    }
}

impl Priority {
    /// A priority from its parameters; urgency is clamped to 0..=7.
    pub fn new(urgency: u8, incremental: bool) -> Self {
        Priority {
            urgency: urgency.min(7),
            incremental,
        }
    }

    /// Parses a Priority Field Value, or `None` if it is not a valid
    /// Structured Field dictionary (RFC 9218 §7 allows treating that as a
    /// connection error for PRIORITY_UPDATE).
    pub fn try_parse(value: &[u8]) -> Option<Self> {
        let mut p = Parser { s: value, i: 0 };
        // Trailing spaces are removed before parsing (RFC 8941 §4.2).
        while p.s.last() == Some(&b' ') {
            p.s = &p.s[..p.s.len() - 1];
        }
        let mut prio = Priority::default();
        p.dictionary(|key, item| match (key, item) {
            (b"u", Item::Integer(u)) if (0..=7).contains(&u) => prio.urgency = u as u8,
            (b"i", Item::Boolean(b)) => prio.incremental = b,
            // Unknown keys, wrong types and out-of-range values are ignored.
            _ => {}
        })?;
        Some(prio)
    }

    /// Parses a Priority Field Value; invalid input gives the defaults.
    pub fn parse(value: &[u8]) -> Self {
        Self::try_parse(value).unwrap_or_default()
    }

    /// Serializes as a dictionary, omitting default values (RFC 9218 §4:
    /// an omitted parameter means its default). The defaults serialize to
    /// an empty string.
    pub fn to_field_value(&self) -> String {
        let mut s = String::new();
        if self.urgency != DEFAULT_URGENCY {
            s.push_str("u=");
            s.push(char::from(b'0' + self.urgency.min(7)));
        }
        if self.incremental {
            if !s.is_empty() {
                s.push_str(", ");
            }
            s.push('i');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Priority {
        Priority::parse(s.as_bytes())
    }

    #[test]
    fn rfc9218_examples() {
        assert_eq!(p("u=0"), Priority::new(0, false));
        assert_eq!(p("u=5, i"), Priority::new(5, true));
        assert_eq!(p(""), Priority::default());
        assert_eq!(p("i"), Priority::new(3, true));
        assert_eq!(p("i=?0"), Priority::new(3, false));
        assert_eq!(p("i=?1, u=7"), Priority::new(7, true));
    }

    #[test]
    fn ignored_members() {
        // Out of range, wrong types, unknown keys: ignored, others kept.
        assert_eq!(p("u=8, i"), Priority::new(3, true));
        assert_eq!(p("u=-1"), Priority::default());
        assert_eq!(p("u=1.5"), Priority::default());
        assert_eq!(p("u=\"1\", i"), Priority::new(3, true));
        assert_eq!(p("i=1"), Priority::default());
        assert_eq!(
            p("u=2, foo=bar, x=(a b);q=1, y=:AQID:, z=?0"),
            Priority::new(2, false)
        );
        // Parameters on members are allowed and ignored.
        assert_eq!(p("u=1;a=b, i;c"), Priority::new(1, true));
        // Later duplicates win.
        assert_eq!(p("u=1, u=6"), Priority::new(6, false));
        // Surrounding spaces and tabs after commas.
        assert_eq!(p("  u=4,\ti  "), Priority::new(4, true));
    }

    #[test]
    fn invalid_dictionaries_give_defaults() {
        for bad in [
            "u=",
            "u=1,",
            ",u=1",
            "U=1",
            "u=1 i",
            "u=1;",
            "u=(1",
            "u=\"abc",
            "u=?2",
            "1=u",
            "u=1234567890123456",
            "u=:abc",
            "u=\u{7f}",
            "u=1,,i",
        ] {
            assert_eq!(Priority::try_parse(bad.as_bytes()), None, "{bad:?}");
            assert_eq!(p(bad), Priority::default(), "{bad:?}");
        }
        assert_eq!(Priority::parse(&[0xff, 0x00]), Priority::default());
    }

    #[test]
    fn serialize_round_trips() {
        for u in 0..=7 {
            for i in [false, true] {
                let prio = Priority::new(u, i);
                let s = prio.to_field_value();
                assert_eq!(p(&s), prio, "{s}");
            }
        }
        assert_eq!(Priority::new(0, true).to_field_value(), "u=0, i");
        assert_eq!(Priority::default().to_field_value(), "");
        assert_eq!(Priority::new(9, false).urgency, 7);
    }
}

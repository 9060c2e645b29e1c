//! Connection IDs (RFC 9000 §5.1).

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

/// The maximum length of a connection ID (RFC 9000 §17.2: 20 bytes in
/// QUIC version 1).
pub const MAX_CONN_ID_LEN: usize = 20;

/// A QUIC connection ID, borrowed or owned.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId<'a>(Cow<'a, [u8]>);

impl<'a> ConnectionId<'a> {
    /// A connection ID that owns `cid`.
    #[inline]
    pub const fn from_vec(cid: Vec<u8>) -> Self {
        ConnectionId(Cow::Owned(cid))
    }

    /// A connection ID that borrows `cid`.
    #[inline]
    pub const fn from_ref(cid: &'a [u8]) -> Self {
        ConnectionId(Cow::Borrowed(cid))
    }

    /// The same connection ID, owning its bytes.
    #[inline]
    pub fn into_owned(self) -> ConnectionId<'static> {
        ConnectionId(Cow::Owned(self.0.into_owned()))
    }
}

impl Deref for ConnectionId<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for ConnectionId<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl<'a> From<&'a [u8]> for ConnectionId<'a> {
    fn from(v: &'a [u8]) -> Self {
        ConnectionId::from_ref(v)
    }
}

impl From<Vec<u8>> for ConnectionId<'static> {
    fn from(v: Vec<u8>) -> Self {
        ConnectionId::from_vec(v)
    }
}

impl fmt::Debug for ConnectionId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ConnectionId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.iter() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_and_borrowed_compare_equal() {
        let bytes = [1u8, 2, 3, 4];
        let a = ConnectionId::from_ref(&bytes);
        let b = ConnectionId::from_vec(bytes.to_vec());
        assert_eq!(a, b);
        assert_eq!(&a[..], &bytes);
        assert_eq!(a.len(), 4);
        assert_eq!(format!("{a}"), "01020304");
        let owned: ConnectionId<'static> = a.into_owned();
        assert_eq!(owned, b);
    }
}

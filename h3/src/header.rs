//! Header fields as the application sees them (quiche's `h3::Header` and
//! `h3::NameValue`).

/// Anything that has a field name and value.
pub trait NameValue {
    /// The field name.
    fn name(&self) -> &[u8];
    /// The field value.
    fn value(&self) -> &[u8];
}

impl<N, V> NameValue for (N, V)
where
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    fn name(&self) -> &[u8] {
        self.0.as_ref()
    }

    fn value(&self) -> &[u8] {
        self.1.as_ref()
    }
}

/// An owned header field.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Header(Vec<u8>, Vec<u8>);

impl Header {
    /// A header from a name and a value.
    pub fn new(name: &[u8], value: &[u8]) -> Self {
        Header(name.to_vec(), value.to_vec())
    }

    /// A header that takes ownership of `name` and `value`.
    pub fn from_vecs(name: Vec<u8>, value: Vec<u8>) -> Self {
        Header(name, value)
    }
}

impl NameValue for Header {
    fn name(&self) -> &[u8] {
        &self.0
    }

    fn value(&self) -> &[u8] {
        &self.1
    }
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?}: {:?}",
            String::from_utf8_lossy(&self.0),
            String::from_utf8_lossy(&self.1)
        )
    }
}

/// A borrowed header field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HeaderRef<'a>(&'a [u8], &'a [u8]);

impl<'a> HeaderRef<'a> {
    /// A borrowed header from a name and a value.
    pub const fn new(name: &'a [u8], value: &'a [u8]) -> Self {
        HeaderRef(name, value)
    }
}

impl NameValue for HeaderRef<'_> {
    fn name(&self) -> &[u8] {
        self.0
    }

    fn value(&self) -> &[u8] {
        self.1
    }
}

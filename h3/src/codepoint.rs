//! One macro for every codepoint registry (frame types, setting
//! identifiers, stream types, error codes): an enum whose known variants map
//! to their wire values, with an `Unknown(u64)` fallback that round-trips.

/// Defines a registry enum with `from_wire`/`to_wire`.
macro_rules! codepoints {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this implementation does not know. Only values that
            /// no named variant has are stored here.
            Unknown(u64),
        }

        impl $name {
            /// The variant for a wire value.
            pub const fn from_wire(v: u64) -> Self {
                match v {
                    $( $value => Self::$variant, )*
                    other => Self::Unknown(other),
                }
            }

            /// The wire value.
            pub const fn to_wire(self) -> u64 {
                match self {
                    $( Self::$variant => $value, )*
                    Self::Unknown(v) => v,
                }
            }
        }
    };
}

pub(crate) use codepoints;

/// Whether `v` has the reserved form `0x1f * N + 0x21` used for greasing
/// frame types, setting identifiers, stream types and error codes
/// (RFC 9114 §7.2.8, §7.2.4.1, §6.2.3, §8.1).
pub const fn is_reserved(v: u64) -> bool {
    v >= 0x21 && (v - 0x21) % 0x1f == 0
}

/// The `n`th reserved value, `0x1f * n + 0x21`; `n` is reduced so the
/// result fits in a QUIC varint.
pub const fn reserved(n: u64) -> u64 {
    0x1f * (n % ((tarte::octets::MAX_VARINT - 0x21) / 0x1f)) + 0x21
}

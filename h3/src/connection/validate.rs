//! Message checks on received field sections (RFC 9114 §4.1.2, §4.2,
//! §4.3; RFC 9220 §3): a malformed message is a stream error of type
//! H3_MESSAGE_ERROR.

use crate::{Header, NameValue};

/// What kind of field section is being checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Section {
    Request,
    Response,
    Trailers,
}

/// Returns why `list` is malformed, if it is.
pub(super) fn check(
    list: &[Header],
    kind: Section,
    extended_connect: bool,
) -> Option<&'static str> {
    let mut regular_seen = false;
    let (mut method, mut scheme, mut path, mut protocol, mut status, mut authority) =
        (None, false, false, false, false, false);
    for h in list {
        let name = h.name();
        // §4.2: "A request or response containing uppercase characters in
        // field names MUST be treated as malformed."
        if name.is_empty() || name.iter().any(|c| c.is_ascii_uppercase()) {
            return Some("field name empty or not lowercase");
        }
        // §4.2: connection-specific fields "MUST" make the message
        // malformed.
        if matches!(
            name,
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade"
        ) || (name == b"te" && h.value() != b"trailers")
        {
            return Some("connection-specific field");
        }
        if name[0] != b':' {
            regular_seen = true;
            continue;
        }
        // §4.3: "All pseudo-header fields MUST appear in the header section
        // before regular fields"; none are allowed in trailers.
        if regular_seen || kind == Section::Trailers {
            return Some("misplaced pseudo-header");
        }
        let dup = match (kind, name) {
            (Section::Request, b":method") => method.replace(h.value().to_vec()).is_some(),
            (Section::Request, b":scheme") => std::mem::replace(&mut scheme, true),
            (Section::Request, b":path") => {
                if h.value().is_empty() {
                    return Some("empty :path");
                }
                std::mem::replace(&mut path, true)
            }
            (Section::Request, b":authority") => std::mem::replace(&mut authority, true),
            (Section::Request, b":protocol") => std::mem::replace(&mut protocol, true),
            (Section::Response, b":status") => std::mem::replace(&mut status, true),
            _ => return Some("unknown pseudo-header"),
        };
        // §4.3: each pseudo-header at most once.
        if dup {
            return Some("duplicate pseudo-header");
        }
    }
    match kind {
        Section::Request => {
            let Some(method) = method else {
                return Some("missing :method");
            };
            if protocol {
                // RFC 9220 §3: `:protocol` only on CONNECT, and only once the
                // server enabled SETTINGS_ENABLE_CONNECT_PROTOCOL.
                if !extended_connect || method != b"CONNECT" {
                    return Some(":protocol not allowed");
                }
                if !scheme || !path || !authority {
                    return Some("extended CONNECT without :scheme/:path/:authority");
                }
            } else if method == b"CONNECT" {
                // §4.4: plain CONNECT has no :scheme or :path.
                if scheme || path || !authority {
                    return Some("malformed CONNECT");
                }
            } else if !scheme || !path {
                // §4.3.1: all requests MUST include :method, :scheme, :path.
                return Some("missing :scheme or :path");
            }
        }
        Section::Response if !status => return Some("missing :status"),
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(list: &[(&str, &str)]) -> Vec<Header> {
        list.iter()
            .map(|(n, v)| Header::new(n.as_bytes(), v.as_bytes()))
            .collect()
    }

    #[test]
    fn requests() {
        let ok = h(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/"),
            ("a", "b"),
        ]);
        assert_eq!(check(&ok, Section::Request, false), None);
        let upper = h(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/"),
            ("A", "b"),
        ]);
        assert!(check(&upper, Section::Request, false).is_some());
        let late = h(&[
            (":method", "GET"),
            ("a", "b"),
            (":scheme", "https"),
            (":path", "/"),
        ]);
        assert!(check(&late, Section::Request, false).is_some());
        let dup = h(&[
            (":method", "GET"),
            (":method", "GET"),
            (":scheme", "s"),
            (":path", "/"),
        ]);
        assert!(check(&dup, Section::Request, false).is_some());
        let no_path = h(&[(":method", "GET"), (":scheme", "https")]);
        assert!(check(&no_path, Section::Request, false).is_some());
        let ext = h(&[
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":path", "/chat"),
            (":authority", "x"),
        ]);
        assert!(check(&ext, Section::Request, false).is_some());
        assert_eq!(check(&ext, Section::Request, true), None);
        let connect = h(&[(":method", "CONNECT"), (":authority", "x:443")]);
        assert_eq!(check(&connect, Section::Request, false), None);
        let te = h(&[
            (":method", "GET"),
            (":scheme", "s"),
            (":path", "/"),
            ("te", "gzip"),
        ]);
        assert!(check(&te, Section::Request, false).is_some());
    }

    #[test]
    fn responses_and_trailers() {
        assert_eq!(
            check(&h(&[(":status", "200")]), Section::Response, false),
            None
        );
        assert!(check(&h(&[("a", "b")]), Section::Response, false).is_some());
        assert!(check(&h(&[(":path", "/")]), Section::Response, false).is_some());
        assert_eq!(check(&h(&[("x-sum", "1")]), Section::Trailers, false), None);
        assert!(check(&h(&[(":status", "200")]), Section::Trailers, false).is_some());
    }
}

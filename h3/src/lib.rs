//! HTTP/3 (RFC 9114) and QPACK (RFC 9204) over tarte::Connection

//! A self-signed certificate generated in memory, for `tarte serve` without
//! `--cert`/`--key` (loopback demos and tests; clients must not verify it).

/// A P-256 key and a certificate for `localhost`, 127.0.0.1 and ::1 valid
/// for 30 days, both PEM: `(certificate, PKCS#8 key)`.
pub fn self_signed() -> Result<(Vec<u8>, Vec<u8>), tarte::Error> {
    let ips = [
        std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    tarte::cert::self_signed(&["localhost"], &ips, 30)
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_certificate_loads_into_a_config() {
        let (cert, key) = super::self_signed().unwrap();
        assert!(cert.starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert!(key.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        let mut c = tarte::Config::new(tarte::PROTOCOL_VERSION).unwrap();
        c.load_cert_chain_from_pem(&cert).unwrap();
        c.load_priv_key_from_pem(&key).unwrap();
    }
}

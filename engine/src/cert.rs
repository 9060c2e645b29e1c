//! Self-signed certificates generated in memory (loopback demos, tests,
//! `tarte serve` without `--cert`): clients must not be asked to trust
//! them.

use std::net::IpAddr;

use boring::asn1::Asn1Time;
use boring::bn::{BigNum, MsbOption};
use boring::ec::{EcGroup, EcKey};
use boring::hash::MessageDigest;
use boring::nid::Nid;
use boring::pkey::PKey;
use boring::x509::extension::SubjectAlternativeName;
use boring::x509::{X509Builder, X509NameBuilder};

use crate::error::{Error, Result};

/// A fresh ECDSA P-256 key and a self-signed certificate for `dns_names`
/// and `ips`, valid `days` days from now, both in PEM:
/// `(certificate, PKCS#8 key)`.
pub fn self_signed(dns_names: &[&str], ips: &[IpAddr], days: u32) -> Result<(Vec<u8>, Vec<u8>)> {
    build(dns_names, ips, days).map_err(|e| {
        tracing::warn!(error = %e, "generating a self-signed certificate failed");
        Error::TlsFail
    })
}

fn build(
    dns_names: &[&str],
    ips: &[IpAddr],
    days: u32,
) -> std::result::Result<(Vec<u8>, Vec<u8>), boring::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(
        Nid::COMMONNAME,
        dns_names.first().copied().unwrap_or("tarte"),
    )?;
    let name = name.build();
    let mut b = X509Builder::new()?;
    // X.509 v3 (the field is zero-based).
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(63, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(days)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    let mut san = SubjectAlternativeName::new();
    for n in dns_names {
        san.dns(n);
    }
    for ip in ips {
        san.ip(&ip.to_string());
    }
    let san = san.build(&b.x509v3_context(None, None))?;
    b.append_extension(&san)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((b.build().to_pem()?, key.private_key_to_pem_pkcs8()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_certificate_loads_into_a_config() {
        let (cert, key) =
            super::self_signed(&["localhost"], &["127.0.0.1".parse().unwrap()], 30).unwrap();
        assert!(cert.starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert!(key.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        let mut c = crate::Config::new(crate::PROTOCOL_VERSION).unwrap();
        c.load_cert_chain_from_pem(&cert).unwrap();
        c.load_priv_key_from_pem(&key).unwrap();
    }
}

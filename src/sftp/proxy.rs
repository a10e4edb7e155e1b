//! The PROXY protocol (HAProxy's, v1 text or v2 binary) in front of SSH, for running behind a TCP
//! load balancer: the balancer opens each connection with a header naming the client's address,
//! which then counts as the peer for `allow_from`, failed-login locks, logs and the audit log.
//!
//! The header is read without reading past it (the SSH version line may follow in the same
//! segment and belongs to russh), then parsed by the `proxy-protocol` crate.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use proxy_protocol::{ProxyHeader, version1, version2};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a balancer may take to send the header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The shortest header: `PROXY UNKNOWN\r\n`.
const SHORTEST: usize = 15;
/// A v1 header is at most 107 bytes (the specification's limit).
const V1_MAX: usize = 107;
/// v2 starts with this signature, then version/command, family, and a 2-byte length.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED: usize = 16;
/// More than any balancer sends (addresses plus a few TLVs).
const V2_MAX_BODY: usize = 4096;

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Reads the header at the start of `stream` and returns the client address it names; `None`
/// when the balancer speaks for itself (v1 `UNKNOWN`, v2 `LOCAL`, e.g. its health checks).
pub async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Option<SocketAddr>> {
    let mut header = vec![0u8; SHORTEST];
    stream.read_exact(&mut header).await?;
    if header.starts_with(b"PROXY ") {
        // Byte by byte to the line end: nothing after the header may be consumed.
        while !header.ends_with(b"\r\n") {
            if header.len() == V1_MAX {
                return Err(invalid("the PROXY v1 header has no line end"));
            }
            header.push(stream.read_u8().await?);
        }
    } else if header.starts_with(&V2_SIGNATURE[..]) {
        header.resize(V2_FIXED, 0);
        stream.read_exact(&mut header[SHORTEST..]).await?;
        let body = u16::from_be_bytes([header[14], header[15]]) as usize;
        if body > V2_MAX_BODY {
            return Err(invalid(format!(
                "the PROXY v2 header is too long ({body} bytes)"
            )));
        }
        header.resize(V2_FIXED + body, 0);
        stream.read_exact(&mut header[V2_FIXED..]).await?;
    } else {
        return Err(invalid(
            "the connection did not start with a PROXY protocol header",
        ));
    }
    let parsed = proxy_protocol::parse(&mut header.as_slice())
        .map_err(|e| invalid(format!("bad PROXY protocol header: {e}")))?;
    Ok(source(parsed))
}

fn source(header: ProxyHeader) -> Option<SocketAddr> {
    match header {
        ProxyHeader::Version1 { addresses } => match addresses {
            version1::ProxyAddresses::Ipv4 { source, .. } => Some(source.into()),
            version1::ProxyAddresses::Ipv6 { source, .. } => Some(source.into()),
            _ => None,
        },
        ProxyHeader::Version2 {
            command: version2::ProxyCommand::Proxy,
            addresses,
            ..
        } => match addresses {
            version2::ProxyAddresses::Ipv4 { source, .. } => Some(source.into()),
            version2::ProxyAddresses::Ipv6 { source, .. } => Some(source.into()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (io::Result<Option<SocketAddr>>, Vec<u8>) {
        let mut input = bytes;
        let found = read_header(&mut input).await;
        (found, input.to_vec())
    }

    #[tokio::test]
    async fn v1_names_the_client_and_leaves_what_follows() {
        let (found, rest) =
            read(b"PROXY TCP4 203.0.113.7 10.0.0.5 51234 22\r\nSSH-2.0-x\r\n").await;
        assert_eq!(found.unwrap(), Some("203.0.113.7:51234".parse().unwrap()));
        assert_eq!(rest, b"SSH-2.0-x\r\n");
        let (found, rest) =
            read(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 22\r\nSSH-2.0-x\r\n").await;
        assert_eq!(found.unwrap(), Some("[2001:db8::1]:4000".parse().unwrap()));
        assert_eq!(rest, b"SSH-2.0-x\r\n");
        let (found, rest) = read(b"PROXY UNKNOWN\r\nSSH").await;
        assert_eq!(found.unwrap(), None);
        assert_eq!(rest, b"SSH");
    }

    #[tokio::test]
    async fn v2_names_the_client_skips_tlvs_and_leaves_what_follows() {
        let mut header = V2_SIGNATURE.to_vec();
        header.extend([0x21, 0x11]); // v2 PROXY, TCP over IPv4
        header.extend(19u16.to_be_bytes()); // 12 address bytes + a 7-byte TLV
        header.extend([198, 51, 100, 9, 10, 0, 0, 5]);
        header.extend(40000u16.to_be_bytes());
        header.extend(22u16.to_be_bytes());
        header.extend([0x04, 0x00, 0x04, b'n', b'o', b'o', b'p']);
        header.extend(b"SSH-2.0-x");
        let (found, rest) = read(&header).await;
        assert_eq!(found.unwrap(), Some("198.51.100.9:40000".parse().unwrap()));
        assert_eq!(rest, b"SSH-2.0-x");

        let mut local = V2_SIGNATURE.to_vec();
        local.extend([0x20, 0x00, 0, 0]); // v2 LOCAL, no addresses
        local.extend(b"SSH");
        let (found, rest) = read(&local).await;
        assert_eq!(found.unwrap(), None);
        assert_eq!(rest, b"SSH");
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        for bad in [
            &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
            b"PROXY TCP4 not-an-address 10.0.0.5 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 and a great deal more text than any header may have..........\r\n",
            b"PROXY TCP4",
        ] {
            let (found, _) = read(bad).await;
            assert!(found.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}

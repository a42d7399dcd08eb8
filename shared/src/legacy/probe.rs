use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::Decoder;

/// A "test packets" probe, which the client echoes back unchanged.
///
/// Python: `struct.pack('<ii', seq, clients_connected)`, 8 bytes.
///
/// ```text
/// +-- seq: i32 LE --+-- clients_connected: i32 LE --+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Probe {
    /// 1 for the first probe of a connection, then +1 each probe.
    pub seq: i32,
    /// Clients in the server's registry when the probe was sent, all services.
    pub clients: i32,
}

impl Probe {
    pub const SIZE: usize = 8;

    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut out = [0; Self::SIZE];
        out[..4].copy_from_slice(&self.seq.to_le_bytes());
        out[4..].copy_from_slice(&self.clients.to_le_bytes());
        out
    }

    pub fn encode(self, dst: &mut BytesMut) {
        dst.put_i32_le(self.seq);
        dst.put_i32_le(self.clients);
    }
}

/// Decodes 8-byte probes (client side; the server checks echoes byte-wise).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProbeCodec;

impl Decoder for ProbeCodec {
    type Item = Probe;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Probe>, Self::Error> {
        if src.remaining() < Probe::SIZE {
            return Ok(None);
        }
        let seq = src.get_i32_le();
        let clients = src.get_i32_le();
        Ok(Some(Probe { seq, clients }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_matches_python_struct() {
        // struct.pack('<ii', 1, 3) == b'\x01\x00\x00\x00\x03\x00\x00\x00'
        let probe = Probe { seq: 1, clients: 3 };
        assert_eq!(probe.to_bytes(), [1, 0, 0, 0, 3, 0, 0, 0]);
        let mut buf = BytesMut::new();
        probe.encode(&mut buf);
        assert_eq!(&buf[..], &probe.to_bytes());
    }

    #[test]
    fn every_truncation_needs_more_bytes() {
        let bytes = Probe {
            seq: 70000,
            clients: 12,
        }
        .to_bytes();
        for cut in 0..Probe::SIZE {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(ProbeCodec.decode(&mut buf).unwrap(), None, "cut at {cut}");
            assert_eq!(buf.len(), cut, "a partial probe is left in the buffer");
        }
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(
            ProbeCodec.decode(&mut buf).unwrap(),
            Some(Probe {
                seq: 70000,
                clients: 12
            })
        );
    }
}

//! The socket wire protocol: the hello, the message header and the answer.
//!
//! 1. consumer -> producer: `P1P2HEL\0`, u32 pid, u32 zero (16 bytes). A
//!    connection that does not say hello (a liveness probe, a port scanner) is
//!    dropped and the producer keeps listening.
//! 2. producer -> consumer: `P1P2MSG\0`, u64 length, u32 CRC-32, u32 zero
//!    (24 bytes), then the payload.
//! 3. consumer -> producer: [`ACK`] or [`NAK`].
//!
//! All integers little-endian.

/// Size of the consumer's hello.
pub(crate) const HELLO_LEN: usize = 16;

/// Size of the header before the payload.
pub(crate) const HEADER_LEN: usize = 24;

const HELLO: &[u8; 8] = b"P1P2HEL\0";
const MSG: &[u8; 8] = b"P1P2MSG\0";

/// The consumer's answer when it accepted the payload.
pub(crate) const ACK: &[u8; 8] = b"P1P2ACK\0";

/// The consumer's answer when it refused the payload.
pub(crate) const NAK: &[u8; 8] = b"P1P2NAK\0";

/// The hello of the consumer `pid`.
pub(crate) fn hello(pid: u32) -> [u8; HELLO_LEN] {
    let mut hello = [0u8; HELLO_LEN];
    hello[..8].copy_from_slice(HELLO);
    hello[8..12].copy_from_slice(&pid.to_le_bytes());
    hello
}

/// The consumer's pid, if `bytes` is a hello.
pub(crate) fn parse_hello(bytes: &[u8; HELLO_LEN]) -> Option<u32> {
    (&bytes[..8] == HELLO).then(|| u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")))
}

/// The header announcing a payload of `len` bytes with CRC-32 `crc32`.
pub(crate) fn header(len: u64, crc32: u32) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MSG);
    header[8..16].copy_from_slice(&len.to_le_bytes());
    header[16..20].copy_from_slice(&crc32.to_le_bytes());
    header
}

/// The announced length and CRC-32, if `bytes` is a message header.
pub(crate) fn parse_header(bytes: &[u8; HEADER_LEN]) -> Option<(u64, u32)> {
    (&bytes[..8] == MSG).then(|| {
        (
            u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
            u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_carries_the_pid_at_the_documented_offsets() {
        let bytes = hello(0x0102_0304);
        assert_eq!(&bytes[..8], b"P1P2HEL\0");
        assert_eq!(&bytes[8..12], &[4, 3, 2, 1]);
        assert_eq!(&bytes[12..], &[0; 4]);
        assert_eq!(parse_hello(&bytes), Some(0x0102_0304));
        let mut probe = bytes;
        probe[0] = b'X';
        assert_eq!(parse_hello(&probe), None);
    }

    #[test]
    fn a_header_round_trips_and_other_magic_is_refused() {
        let bytes = header(1 << 40, 0xdead_beef);
        assert_eq!(&bytes[..8], b"P1P2MSG\0");
        assert_eq!(&bytes[20..], &[0; 4]);
        assert_eq!(parse_header(&bytes), Some((1 << 40, 0xdead_beef)));
        let mut ack = [0u8; HEADER_LEN];
        ack[..8].copy_from_slice(ACK);
        assert_eq!(parse_header(&ack), None);
    }
}

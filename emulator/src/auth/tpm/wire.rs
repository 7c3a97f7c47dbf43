//! TPM 2.0 marshalling (Part 2 of the specification): big-endian integers and `TPM2B_*`
//! structures, a `u16` size followed by that many bytes.
//!
//! [`Reader`] never indexes past its input: each read checks the length first and reports what
//! it was reading, so a truncated or lying size field becomes [`TpmError::Truncated`].

use super::TpmError;

/// A cursor over a marshalled structure.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// `what` names the structure in errors ("EK TPM2B_PUBLIC", …).
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { rest: bytes, what }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8], TpmError> {
        if len > self.rest.len() {
            return Err(TpmError::Truncated {
                what: self.what,
                needed: len,
                available: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], TpmError> {
        let available = self.rest.len();
        let what = self.what;
        <[u8; N]>::try_from(self.bytes(N)?).map_err(|_| TpmError::Truncated {
            what,
            needed: N,
            available,
        })
    }

    pub(crate) fn u16(&mut self) -> Result<u16, TpmError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, TpmError> {
        self.array().map(u32::from_be_bytes)
    }

    /// A `TPM2B_*`: its size, then that many bytes (returned without the size).
    pub(crate) fn tpm2b(&mut self) -> Result<&'a [u8], TpmError> {
        let len = self.u16()?;
        self.bytes(usize::from(len))
    }

    /// Fails unless everything was read: a structure with extra bytes inside its size is
    /// not the structure the device claims it is.
    pub(crate) fn finish(self) -> Result<(), TpmError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(TpmError::TrailingBytes {
                what: self.what,
                count: self.rest.len(),
            })
        }
    }
}

/// Appends `TPM2B(bytes)` to `out`; `what` names the field if it does not fit a `u16` size.
pub(crate) fn put_tpm2b(
    out: &mut Vec<u8>,
    bytes: &[u8],
    what: &'static str,
) -> Result<(), TpmError> {
    let len = u16::try_from(bytes.len()).map_err(|_| TpmError::TooLarge {
        what,
        len: bytes.len(),
        max: usize::from(u16::MAX),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// `TPM2B(bytes)` as a new buffer.
pub(crate) fn tpm2b(bytes: &[u8], what: &'static str) -> Result<Vec<u8>, TpmError> {
    let mut out = Vec::with_capacity(bytes.len().saturating_add(2));
    put_tpm2b(&mut out, bytes, what)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_size_longer_than_the_input_is_truncated_not_a_panic() {
        let mut r = Reader::new(&[0xff, 0xff, 1, 2, 3], "test");
        assert_eq!(
            r.tpm2b(),
            Err(TpmError::Truncated {
                what: "test",
                needed: 0xffff,
                available: 3
            })
        );
        assert!(Reader::new(&[0x01], "test").u16().is_err());
        assert!(Reader::new(&[0, 0, 0], "test").u32().is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut r = Reader::new(&[0, 1, 9, 7], "test");
        assert_eq!(r.tpm2b(), Ok(&[9u8][..]));
        assert_eq!(
            r.finish(),
            Err(TpmError::TrailingBytes {
                what: "test",
                count: 1
            })
        );
    }

    #[test]
    fn tpm2b_round_trips_and_refuses_oversized_content() {
        let encoded = tpm2b(b"abc", "test").unwrap();
        assert_eq!(encoded, [0, 3, b'a', b'b', b'c']);
        assert_eq!(Reader::new(&encoded, "test").tpm2b(), Ok(&b"abc"[..]));
        assert!(matches!(
            tpm2b(&vec![0; 70_000], "test"),
            Err(TpmError::TooLarge { .. })
        ));
    }
}

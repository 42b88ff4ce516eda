//! Ethernet MAC addresses as users type them: six two-digit hex octets
//! separated by ':', nothing else.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// A group address (multicast, broadcast included): the I/G bit, the
    /// lowest bit of the first octet, is set. Valid as a destination only.
    pub fn is_group(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl FromStr for Mac {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Mac> {
        let octets: Vec<&str> = s.split(':').collect();
        let well_formed = octets.len() == 6
            && octets.iter().all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
        if !well_formed {
            bail!(
                "{s:?} is not a MAC address; write six two-digit hex octets like 02:00:5e:10:00:01"
            );
        }
        let mut mac = [0u8; 6];
        for (byte, octet) in mac.iter_mut().zip(octets) {
            // Cannot fail: two hex digits checked above.
            *byte = u8::from_str_radix(octet, 16)?;
        }
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_six_hex_octets_in_either_case() {
        let mac: Mac = "02:aB:cd:EF:00:ff".parse().unwrap();
        assert_eq!(mac.0, [0x02, 0xab, 0xcd, 0xef, 0x00, 0xff]);
        assert_eq!(mac.to_string(), "02:ab:cd:ef:00:ff");
    }

    #[test]
    fn group_addresses_have_the_ig_bit() {
        for (mac, group) in [
            ("ff:ff:ff:ff:ff:ff", true),
            ("01:00:5e:00:00:01", true),
            ("33:33:00:00:00:01", true),
            ("03:00:00:00:00:00", true),
            ("02:00:00:00:00:01", false),
            ("fe:ff:ff:ff:ff:ff", false),
            ("00:00:00:00:00:00", false),
        ] {
            assert_eq!(mac.parse::<Mac>().unwrap().is_group(), group, "{mac}");
        }
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "0xa:b:c:d:e:f",
            "a:b:c:d:e:f",
            "aa:bb:cc:dd:ee:ff ",
            " aa:bb:cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:fg",
            "aa-bb-cc-dd-ee-ff",
            "aa:bb:cc:dd:ee:+f",
            "aa:bb:cc:dd:ee:ff:",
            "aabb.ccdd.eeff",
        ] {
            let err = bad.parse::<Mac>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad:?}: {err}");
        }
    }
}

//! Pod IPs: each pod gets its own loopback address, so processes that bind their POD_IP share no ports.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("pod CIDR {0:?} is not of the form A.B.C.D/N")]
    BadCidr(String),
    #[error("pod CIDR {0} is not inside 127.0.0.0/8: only loopback addresses work without network setup")]
    NotLoopback(String),
    #[error("pod CIDR {0} has no free address left")]
    Exhausted(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCidr {
    base: u32,
    prefix: u8,
}

impl FromStr for PodCidr {
    type Err = IpamError;

    fn from_str(s: &str) -> Result<Self, IpamError> {
        let bad = || IpamError::BadCidr(s.to_owned());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        let cidr = PodCidr {
            base: u32::from(addr) & mask,
            prefix,
        };
        if !Ipv4Addr::from(cidr.base).is_loopback() {
            return Err(IpamError::NotLoopback(cidr.to_string()));
        }
        Ok(cidr)
    }
}

impl std::fmt::Display for PodCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl PodCidr {
    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(ip) & mask == self.base
    }
}

/// Hands out addresses round-robin (a released address is reused last), keyed by pod uid.
#[derive(Debug)]
pub struct PodIpAllocator {
    cidr: PodCidr,
    by_uid: BTreeMap<String, Ipv4Addr>,
    next_offset: u32,
}

impl PodIpAllocator {
    pub fn new(cidr: PodCidr) -> Self {
        Self {
            cidr,
            by_uid: BTreeMap::new(),
            next_offset: 1,
        }
    }

    /// The pod's address: the one it already holds, the one its status reported (after a kubelet restart),
    /// or the next free one.
    pub fn allocate(&mut self, uid: &str, previous: Option<Ipv4Addr>) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = self.by_uid.get(uid) {
            return Ok(*ip);
        }
        if let Some(ip) = previous.filter(|ip| self.cidr.contains(*ip) && !self.in_use(*ip)) {
            self.by_uid.insert(uid.to_owned(), ip);
            return Ok(ip);
        }
        // Offsets 0 and size-1 (network and broadcast) are never handed out.
        let usable = self.cidr.size() - 2;
        for _ in 0..usable {
            let offset = self.next_offset;
            self.next_offset = if offset >= usable { 1 } else { offset + 1 };
            let ip = Ipv4Addr::from(self.cidr.base + offset);
            if !self.in_use(ip) {
                self.by_uid.insert(uid.to_owned(), ip);
                return Ok(ip);
            }
        }
        Err(IpamError::Exhausted(self.cidr.to_string()))
    }

    pub fn release(&mut self, uid: &str) {
        self.by_uid.remove(uid);
    }

    fn in_use(&self, ip: Ipv4Addr) -> bool {
        self.by_uid.values().any(|held| *held == ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("test address")
    }

    #[test]
    fn parses_only_loopback_cidrs() {
        let cidr: PodCidr = "127.42.7.9/16".parse().expect("valid");
        assert_eq!(cidr.to_string(), "127.42.0.0/16");
        assert!(cidr.contains(ip("127.42.255.1")));
        assert!(!cidr.contains(ip("127.43.0.1")));
        assert_eq!(
            "10.0.0.0/16".parse::<PodCidr>(),
            Err(IpamError::NotLoopback("10.0.0.0/16".into()))
        );
        assert!("127.42.0.0".parse::<PodCidr>().is_err());
        assert!("127.42.0.0/31".parse::<PodCidr>().is_err());
    }

    #[test]
    fn allocations_are_unique_stable_and_released() {
        let mut ipam = PodIpAllocator::new("127.42.0.0/16".parse().expect("valid"));
        let a = ipam.allocate("a", None).expect("free");
        let b = ipam.allocate("b", None).expect("free");
        assert_eq!(a, ip("127.42.0.1"));
        assert_eq!(b, ip("127.42.0.2"));
        assert_eq!(ipam.allocate("a", None), Ok(a), "same pod, same address");
        ipam.release("a");
        assert_eq!(
            ipam.allocate("c", None),
            Ok(ip("127.42.0.3")),
            "released addresses are reused last"
        );
    }

    #[test]
    fn keeps_a_previous_address_unless_taken_or_foreign() {
        let mut ipam = PodIpAllocator::new("127.42.0.0/16".parse().expect("valid"));
        assert_eq!(ipam.allocate("a", Some(ip("127.42.3.4"))), Ok(ip("127.42.3.4")));
        assert_eq!(ipam.allocate("b", Some(ip("127.42.3.4"))), Ok(ip("127.42.0.1")));
        assert_eq!(ipam.allocate("c", Some(ip("10.1.2.3"))), Ok(ip("127.42.0.2")));
    }

    #[test]
    fn exhaustion_is_an_error_and_wraps_around() {
        let mut ipam = PodIpAllocator::new("127.0.0.0/30".parse().expect("valid"));
        assert_eq!(ipam.allocate("a", None), Ok(ip("127.0.0.1")));
        assert_eq!(ipam.allocate("b", None), Ok(ip("127.0.0.2")));
        assert_eq!(
            ipam.allocate("c", None),
            Err(IpamError::Exhausted("127.0.0.0/30".into()))
        );
        ipam.release("a");
        assert_eq!(ipam.allocate("c", None), Ok(ip("127.0.0.1")));
    }
}

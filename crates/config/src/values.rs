//! The small value formats of the file: durations with units and IP
//! addresses with an optional prefix length.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

const DURATION_HINT: &str = "write a number and a unit, e.g. \"100ms\", \"2s\", \"5m\", \"1h\"";

/// "100ms", "2s", "1.5s", "5m", "1h".
pub fn duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("\"{text}\" is not a duration: {DURATION_HINT}");
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| bad())
}

/// How a duration is written back in messages: the way a person would.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) || ms == 0 {
        format!("{ms}ms")
    } else if !ms.is_multiple_of(60_000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}m", ms / 60_000)
    }
}

/// An address, with the prefix length of its subnet if it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    pub ip: IpAddr,
    pub prefix: Option<u8>,
}

impl Address {
    pub fn parse(text: &str) -> Result<Address, String> {
        let bad = || format!("\"{text}\" is not an IP address with an optional /prefix");
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, p)) => (ip, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if let Some(p) = prefix.filter(|&p| p > max) {
            let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
            return Err(format!("prefix /{p} is too long for an {family} address"));
        }
        Ok(Address { ip, prefix })
    }

    /// The subnet this address is in, if its prefix is known.
    pub fn subnet(&self) -> Option<Address> {
        let prefix = self.prefix?;
        Some(Address { ip: mask(self.ip, prefix), prefix: Some(prefix) })
    }

    /// Is `ip` inside this address's subnet?
    pub fn contains(&self, ip: IpAddr) -> bool {
        match self.prefix {
            Some(p) => ip.is_ipv4() == self.ip.is_ipv4() && mask(ip, p) == mask(self.ip, p),
            None => false,
        }
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix {
            Some(p) => write!(f, "{}/{p}", self.ip),
            None => write!(f, "{}", self.ip),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "10", "1 s", "s", "1.2.3s", "-1s", "1d"] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(show(Duration::from_millis(300)), "300ms");
        assert_eq!(show(Duration::from_secs(2)), "2s");
        assert_eq!(show(Duration::from_secs(600)), "10m");
    }

    #[test]
    fn addresses_and_subnets() {
        let a = Address::parse("10.0.0.1/24").unwrap();
        assert_eq!(a.subnet().unwrap().to_string(), "10.0.0.0/24");
        assert!(a.contains("10.0.0.200".parse().unwrap()));
        assert!(!a.contains("10.0.1.1".parse().unwrap()));
        assert!(!a.contains("fd00::1".parse().unwrap()));
        let b = Address::parse("fd00::1/64").unwrap();
        assert!(b.contains("fd00::ffff".parse().unwrap()));
        assert_eq!(Address::parse("10.0.0.1").unwrap().prefix, None);
        assert!(Address::parse("10.0.0.300/24").is_err());
        assert_eq!(Address::parse("10.0.0.1/33"), Err("prefix /33 is too long for an IPv4 address".into()));
    }
}

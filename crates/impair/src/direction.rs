//! Directions and per-direction rule values.
//!
//! Every rule can be set per direction (spec: "Each rule can be set per
//! direction"). On the command line a value is `VALUE` (both directions),
//! `up=VALUE` (client → upstream) or `down=VALUE` (upstream → client).

use std::fmt;
use std::str::FromStr;

/// Which way bytes or datagrams travel through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client to the upstream server.
    Up,
    /// From the upstream server back to the client.
    Down,
}

impl Direction {
    /// Both directions, up first.
    pub const BOTH: [Direction; 2] = [Direction::Up, Direction::Down];

    /// `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value for each direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerDir<T> {
    /// Client → upstream.
    pub up: T,
    /// Upstream → client.
    pub down: T,
}

impl<T: Clone> PerDir<T> {
    /// The same value both ways.
    pub fn both(value: T) -> Self {
        Self {
            up: value.clone(),
            down: value,
        }
    }
}

impl<T> PerDir<T> {
    /// The value for `dir`.
    pub fn get(&self, dir: Direction) -> &T {
        match dir {
            Direction::Up => &self.up,
            Direction::Down => &self.down,
        }
    }

    /// The value for `dir`, mutably.
    pub fn get_mut(&mut self, dir: Direction) -> &mut T {
        match dir {
            Direction::Up => &mut self.up,
            Direction::Down => &mut self.down,
        }
    }

    /// Applies a command-line value to the direction(s) it names.
    pub fn apply<V: Clone>(&mut self, value: &DirValue<V>, mut set: impl FnMut(&mut T, V)) {
        for dir in Direction::BOTH {
            if value.dir.is_none_or(|d| d == dir) {
                set(self.get_mut(dir), value.value.clone());
            }
        }
    }
}

/// A rule value with an optional direction: `VALUE`, `up=VALUE`, `down=VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct DirValue<V> {
    /// `None` means both directions.
    pub dir: Option<Direction>,
    /// The value.
    pub value: V,
}

impl<V: FromStr> FromStr for DirValue<V> {
    type Err = V::Err;
    fn from_str(s: &str) -> Result<Self, V::Err> {
        // `a2b=`/`b2a=` name the directions of `impair link`.
        let (dir, rest) = if let Some(r) = s.strip_prefix("up=").or(s.strip_prefix("a2b=")) {
            (Some(Direction::Up), r)
        } else if let Some(r) = s.strip_prefix("down=").or(s.strip_prefix("b2a=")) {
            (Some(Direction::Down), r)
        } else if let Some(r) = s.strip_prefix("both=") {
            (None, r)
        } else {
            (None, s)
        };
        Ok(DirValue {
            dir,
            value: rest.parse()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_prefixes() {
        let v: DirValue<u32> = "up=5".parse().unwrap();
        assert_eq!((v.dir, v.value), (Some(Direction::Up), 5));
        let v: DirValue<u32> = "down=7".parse().unwrap();
        assert_eq!((v.dir, v.value), (Some(Direction::Down), 7));
        let v: DirValue<u32> = "a2b=6".parse().unwrap();
        assert_eq!((v.dir, v.value), (Some(Direction::Up), 6));
        let v: DirValue<u32> = "b2a=8".parse().unwrap();
        assert_eq!((v.dir, v.value), (Some(Direction::Down), 8));
        let v: DirValue<u32> = "9".parse().unwrap();
        assert_eq!((v.dir, v.value), (None, 9));
        let v: DirValue<String> = "both=up=x".parse().unwrap();
        assert_eq!((v.dir, v.value.as_str()), (None, "up=x"));
        assert!("up=x".parse::<DirValue<u32>>().is_err());
    }

    #[test]
    fn apply_sets_only_the_named_direction() {
        let mut p = PerDir { up: 0, down: 0 };
        p.apply(&"down=3".parse::<DirValue<u32>>().unwrap(), |t, v| *t = v);
        assert_eq!((p.up, p.down), (0, 3));
        p.apply(&"4".parse::<DirValue<u32>>().unwrap(), |t, v| *t = v);
        assert_eq!((p.up, p.down), (4, 4));
    }
}

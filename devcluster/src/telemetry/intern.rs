//! Compact strings for the span and log stores. Services, instances, operations, attribute
//! keys and short values repeat across records, so each is kept once and a record holds a
//! 4-byte id; the rest (long or, once the interner is full, new strings) the record owns.

use std::collections::HashMap;
use std::sync::Arc;

/// Distinct strings kept at most, so unique strings cannot grow the interner without end.
const INTERNED_MAX: usize = 16_384;
/// Longer values are mostly unique (messages, reasons, URLs with ids): not interned.
const INTERN_VALUE_MAX_LEN: usize = 24;
/// The id's top bit says "the record's own string number N" rather than "interned string N".
const OWN: u32 = 1 << 31;

/// A string of a stored record: an interned id or an index into the record's own strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sym(u32);

#[derive(Default)]
pub(crate) struct Interner {
    /// foldhash: short strings are hashed on every stored record; SipHash's protection
    /// against crafted keys buys nothing here (a full interner just stops interning).
    ids: HashMap<Arc<str>, u32, foldhash::fast::FixedState>,
    strings: Vec<Arc<str>>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> Option<u32> {
        if let Some(&id) = self.ids.get(s) {
            return Some(id);
        }
        if self.strings.len() >= INTERNED_MAX {
            return None;
        }
        let id = self.strings.len() as u32;
        let a: Arc<str> = Arc::from(s);
        self.strings.push(a.clone());
        self.ids.insert(a, id);
        Some(id)
    }

    /// Packs the strings of one record; `finish` hands back what the record must own.
    pub(crate) fn packer(&mut self) -> Packer<'_> {
        Packer {
            strings: self,
            own: Vec::new(),
        }
    }

    /// The text of `sym` in a record whose own strings are `own`.
    pub(crate) fn text<'a>(&'a self, own: &'a [Box<str>], sym: Sym) -> &'a str {
        let found = if sym.0 & OWN == 0 {
            self.strings.get(sym.0 as usize).map(|s| &**s)
        } else {
            own.get((sym.0 & !OWN) as usize).map(|s| &**s)
        };
        found.unwrap_or("")
    }
}

pub(crate) struct Packer<'a> {
    strings: &'a mut Interner,
    own: Vec<Box<str>>,
}

impl Packer<'_> {
    /// A name (service, operation, key): interned whatever its length.
    pub(crate) fn name(&mut self, s: &str) -> Sym {
        match self.strings.intern(s) {
            Some(id) => Sym(id),
            None => self.owned(s),
        }
    }

    /// A value: interned when short, owned by the record when long.
    pub(crate) fn value(&mut self, s: &str) -> Sym {
        if s.len() <= INTERN_VALUE_MAX_LEN {
            self.name(s)
        } else {
            self.owned(s)
        }
    }

    pub(crate) fn pairs(&mut self, pairs: &[(String, String)]) -> Box<[(Sym, Sym)]> {
        pairs
            .iter()
            .map(|(k, v)| (self.name(k), self.value(v)))
            .collect()
    }

    fn owned(&mut self, s: &str) -> Sym {
        self.own.push(s.into());
        Sym(OWN | (self.own.len() - 1) as u32)
    }

    pub(crate) fn finish(self) -> Box<[Box<str>]> {
        self.own.into_boxed_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_shared_long_ones_owned() {
        let mut i = Interner::default();
        let long = "x".repeat(100);
        let mut p = i.packer();
        let (a, b, c) = (p.name("user-service"), p.value(&long), p.value("200"));
        let own = p.finish();
        let mut p = i.packer();
        let a2 = p.name("user-service");
        assert!(
            p.finish().is_empty(),
            "a known name costs the record nothing"
        );
        assert_eq!(a, a2);
        assert_eq!(own.len(), 1, "only the long value is the record's own");
        assert_eq!(i.text(&own, a), "user-service");
        assert_eq!(i.text(&own, b), long);
        assert_eq!(i.text(&own, c), "200");
    }

    #[test]
    fn a_full_interner_keeps_new_strings_with_the_record() {
        let mut i = Interner::default();
        for n in 0..INTERNED_MAX {
            i.intern(&n.to_string());
        }
        let mut p = i.packer();
        let s = p.name("new-service");
        let own = p.finish();
        assert_eq!(own.len(), 1);
        assert_eq!(i.text(&own, s), "new-service");
        assert_eq!(i.strings.len(), INTERNED_MAX);
    }
}

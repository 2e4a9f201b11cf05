//! Pairing the source's topics with the target's by table, as Debezium names topics:
//! `<prefix>.<schema>.<table>` (or `<prefix>.<database>.<table>` for MySQL).

use std::collections::BTreeMap;

/// A source topic and the target topic of the same table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pair {
    /// `<schema>.<table>` (or the table alone, when only it matched).
    pub(crate) table: String,
    /// The source's topic.
    pub(crate) source: String,
    /// The target's topic.
    pub(crate) target: String,
}

/// The pairs, and the topics of each side that have no partner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Pairing {
    pub(crate) pairs: Vec<Pair>,
    pub(crate) unpaired: Vec<String>,
}

/// What follows `prefix.` in `topic`, if the topic is under the prefix.
fn suffix<'t>(topic: &'t str, prefix: &str) -> Option<&'t str> {
    topic
        .strip_prefix(prefix)?
        .strip_prefix('.')
        .filter(|s| !s.is_empty())
}

fn table_of(suffix: &str) -> &str {
    suffix.rsplit('.').next().unwrap_or(suffix)
}

/// Pairs topics by the part after their prefix (`public.orders`); what is left pairs by
/// table name alone when that name is unique on both sides (a PostgreSQL `public.orders`
/// copied into MySQL's `shop.orders`). Anything else is listed as unpaired, not guessed.
pub(crate) fn pair(topics: &[String], source_prefix: &str, target_prefix: &str) -> Pairing {
    let side = |prefix: &str| -> BTreeMap<&str, &str> {
        topics
            .iter()
            .filter_map(|t| Some((suffix(t, prefix)?, t.as_str())))
            .collect()
    };
    let (mut source, mut target) = (side(source_prefix), side(target_prefix));
    let mut pairs = Vec::new();
    let exact: Vec<&str> = source
        .keys()
        .filter(|s| target.contains_key(*s))
        .copied()
        .collect();
    for s in exact {
        pairs.push(Pair {
            table: s.to_string(),
            source: source.remove(s).unwrap_or_default().to_string(),
            target: target.remove(s).unwrap_or_default().to_string(),
        });
    }
    let unique = |m: &BTreeMap<&str, &str>, table: &str| {
        m.keys().filter(|s| table_of(s) == table).count() == 1
    };
    let by_table: Vec<(&str, &str)> = source
        .keys()
        .filter_map(|s| {
            let t = target.keys().find(|t| table_of(t) == table_of(s))?;
            (unique(&source, table_of(s)) && unique(&target, table_of(s))).then_some((*s, *t))
        })
        .collect();
    for (s, t) in by_table {
        pairs.push(Pair {
            table: table_of(s).to_string(),
            source: source.remove(s).unwrap_or_default().to_string(),
            target: target.remove(t).unwrap_or_default().to_string(),
        });
    }
    let mut unpaired: Vec<String> = source
        .values()
        .chain(target.values())
        .map(|t| t.to_string())
        .collect();
    unpaired.sort();
    pairs.sort_by(|a, b| a.table.cmp(&b.table));
    Pairing { pairs, unpaired }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_schema_and_table_then_by_a_unique_table_name() {
        let topics: Vec<String> = [
            "shop.public.orders",
            "shop.public.customers",
            "shop.audit.orders",
            "shop.public.items",
            "replica.public.orders",
            "replica.public.customers",
            "mysql.shop.items",
            "replica.public.only_here",
            "other.public.orders",
            "shopping.public.orders",
        ]
        .map(String::from)
        .into();
        let p = pair(&topics, "shop", "replica");
        let got: Vec<(&str, &str, &str)> = p
            .pairs
            .iter()
            .map(|p| (p.table.as_str(), p.source.as_str(), p.target.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "public.customers",
                    "shop.public.customers",
                    "replica.public.customers"
                ),
                (
                    "public.orders",
                    "shop.public.orders",
                    "replica.public.orders"
                ),
            ]
        );
        assert_eq!(
            p.unpaired,
            [
                "replica.public.only_here",
                "shop.audit.orders",
                "shop.public.items"
            ]
        );
        // A table name unique on both sides pairs across schemas (PostgreSQL → MySQL).
        let p = pair(&topics, "shop", "mysql");
        assert_eq!(p.pairs.len(), 1);
        assert_eq!(
            (p.pairs[0].source.as_str(), p.pairs[0].target.as_str()),
            ("shop.public.items", "mysql.shop.items")
        );
    }
}

//! Ordering things that depend on each other (environment values that read each other, a
//! plan's tasks), or naming the cycle that makes it impossible.

use indexmap::IndexMap;

/// The keys in an order where each comes after those it depends on, or the first cycle found,
/// as the chain of keys that closes it (`[url, base, url]`). Keys are visited in map order,
/// dependencies in list order, so the cycle named is the same from run to run.
pub fn order<'a>(
    dependencies: &IndexMap<&'a str, Vec<&'a str>>,
) -> Result<Vec<&'a str>, Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        key: &'a str,
        dependencies: &IndexMap<&'a str, Vec<&'a str>>,
        marks: &mut IndexMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
        order: &mut Vec<&'a str>,
    ) -> Result<(), Vec<String>> {
        match marks.get(key) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = path.iter().position(|k| *k == key).unwrap_or(0);
                let mut cycle: Vec<String> =
                    path[start..].iter().map(|k| (*k).to_owned()).collect();
                cycle.push(key.to_owned());
                return Err(cycle);
            }
            None => {}
        }
        marks.insert(key, Mark::Visiting);
        path.push(key);
        for read in dependencies.get(key).into_iter().flatten() {
            visit(read, dependencies, marks, path, order)?;
        }
        path.pop();
        marks.insert(key, Mark::Done);
        order.push(key);
        Ok(())
    }
    let mut marks = IndexMap::new();
    let mut order = Vec::new();
    for key in dependencies.keys() {
        visit(key, dependencies, &mut marks, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

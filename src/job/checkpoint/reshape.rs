//! Which files of a co-partitioned entity's checkpoint a worker restores, on a cluster
//! of another shape than the one that wrote it.
//!
//! A co-partitioned key is kept by the worker that reads its partition, and a worker's
//! file does not say which of its partitions each key came from. So a file is restored
//! whole, by the one worker that now reads all its partitions, or the shape is refused:
//! file `j` of `w` holds partitions `p ≡ j (mod w)`, read here by workers `p mod peers`.
//! That keeps a file together on the same number of workers, on any divisor of it, and
//! on any number when each file held at most one partition (as many workers as
//! partitions, or more).

/// Why a checkpoint's files cannot be restored on this shape: a file's partitions are
/// read by two workers here. Every worker finds the same one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split {
    /// The file (the writing worker's index).
    pub(crate) file: usize,
    /// Two of its partitions, read by two workers here.
    pub(crate) partitions: [usize; 2],
    /// The numbers of workers, up to the partitions' or the writers' number, that keep
    /// every file together.
    pub(crate) fits: Vec<usize>,
}

/// The files worker `index` of `peers` restores, of a checkpoint written by `written`
/// workers over `partitions` partitions a side.
pub(crate) fn files(
    partitions: usize,
    written: usize,
    index: usize,
    peers: usize,
) -> Result<Vec<usize>, Split> {
    let written = written.max(1);
    let peers = peers.max(1);
    if let Some((file, pair)) = split(partitions, written, peers) {
        let fits = (1..=written.max(partitions))
            .filter(|&n| split(partitions, written, n).is_none())
            .collect();
        return Err(Split {
            file,
            partitions: pair,
            fits,
        });
    }
    // A file past the partitions held none: no worker restores it.
    Ok((0..written.min(partitions))
        .filter(|&j| j % peers == index)
        .collect())
}

/// The first file whose partitions two of `peers` workers read, with two of them.
fn split(partitions: usize, written: usize, peers: usize) -> Option<(usize, [usize; 2])> {
    (0..written.min(partitions)).find_map(|j| {
        let mut held = (j..partitions).step_by(written);
        let first = held.next()?;
        held.find(|p| p % peers != first % peers)
            .map(|p| (j, [first, p]))
    })
}

#[cfg(test)]
mod tests {
    use super::{files, Split};

    /// Every worker's files, or the refusal.
    fn shape(partitions: usize, written: usize, peers: usize) -> Result<Vec<Vec<usize>>, Split> {
        (0..peers)
            .map(|i| files(partitions, written, i, peers))
            .collect()
    }

    #[test]
    fn the_same_shape_restores_each_worker_its_own_file() {
        assert_eq!(shape(4, 2, 2), Ok(vec![vec![0], vec![1]]));
        assert_eq!(shape(2, 2, 2), Ok(vec![vec![0], vec![1]]));
    }

    #[test]
    fn fewer_workers_by_a_divisor_take_whole_files() {
        assert_eq!(shape(8, 4, 2), Ok(vec![vec![0, 2], vec![1, 3]]));
        assert_eq!(shape(8, 4, 1), Ok(vec![vec![0, 1, 2, 3]]));
    }

    #[test]
    fn one_partition_a_file_restores_on_any_number_of_workers() {
        // 2 partitions on 2 workers, restored on 3: worker 2 reads nothing.
        assert_eq!(shape(2, 2, 3), Ok(vec![vec![0], vec![1], vec![]]));
        assert_eq!(shape(2, 3, 1), Ok(vec![vec![0, 1]]));
        assert_eq!(shape(2, 3, 2), Ok(vec![vec![0], vec![1]]));
    }

    #[test]
    fn a_file_whose_partitions_would_part_is_refused_with_the_shapes_that_fit() {
        // File 0 of 2 held partitions 0 and 2: on 3 workers, workers 0 and 2 read them.
        let split = shape(4, 2, 3).unwrap_err();
        assert_eq!((split.file, split.partitions), (0, [0, 2]));
        assert_eq!(split.fits, vec![1, 2]);
        // One worker held both partitions: any more would part them.
        let split = shape(2, 1, 2).unwrap_err();
        assert_eq!(
            (split.file, split.partitions, split.fits),
            (0, [0, 1], vec![1])
        );
        // Every worker finds the same file.
        for i in 0..3 {
            assert_eq!(files(4, 2, i, 3).unwrap_err().file, 0);
        }
    }

    #[test]
    fn every_partition_is_restored_once_wherever_it_is_read() {
        for partitions in 1..9 {
            for written in 1..7 {
                for peers in 1..7 {
                    let Ok(all) = shape(partitions, written, peers) else {
                        continue;
                    };
                    for p in 0..partitions {
                        let holders: Vec<usize> = (0..peers)
                            .filter(|&i| all[i].contains(&(p % written)))
                            .collect();
                        assert_eq!(holders, vec![p % peers], "{partitions} {written} {peers}");
                    }
                }
            }
        }
    }
}

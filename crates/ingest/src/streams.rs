//! Which topic is which stream of the contract.

use contract::Stream;

use crate::settings::TopicNames;

/// Maps topic names to contract streams and stream indexes.
#[derive(Debug, Clone)]
pub struct Streams {
    names: [(String, Stream); 3],
}

impl Streams {
    /// The input topics of `topics`.
    pub fn new(topics: &TopicNames) -> Self {
        Streams {
            names: [
                (topics.clickstream.clone(), Stream::Clickstream),
                (topics.orders.clone(), Stream::Orders),
                (topics.spend.clone(), Stream::Spend),
            ],
        }
    }

    /// The index (for [`aggregator::Source::stream`]) and kind of `topic`.
    pub fn of(&self, topic: &str) -> Option<(u8, Stream)> {
        self.names
            .iter()
            .position(|(n, _)| n == topic)
            .map(|i| (i as u8, self.names[i].1))
    }

    /// The topic name of a stream index.
    pub fn topic(&self, index: u8) -> Option<&str> {
        self.names.get(usize::from(index)).map(|(n, _)| n.as_str())
    }

    /// Topic names to subscribe to.
    pub fn topics(&self) -> Vec<&str> {
        self.names.iter().map(|(n, _)| n.as_str()).collect()
    }
}

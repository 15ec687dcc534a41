//! Which topic is which stream: the one mapping between Kafka's
//! `(topic, partition)` and the pipeline's [`Source`], for every topic the
//! pipeline reads (the contract's input streams and the internal
//! customer-facts topic).

use aggregator::Source;
use contract::Stream;

use crate::settings::TopicNames;

/// What a source carries, beyond its topic name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// One of the contract's input streams.
    Input(Stream),
    /// The internal customer facts, re-keyed by customer.
    CustomerFacts,
}

impl Feed {
    /// The label this feed is counted under (the stream's name, or
    /// `customer_facts`).
    pub fn as_str(self) -> &'static str {
        match self {
            Feed::Input(stream) => stream.as_str(),
            Feed::CustomerFacts => "customer_facts",
        }
    }
}

/// The topics the pipeline reads, each with its stream index in
/// [`Source::stream`]: clickstream 0, orders 1, spend 2, customer facts 3.
#[derive(Debug, Clone)]
pub struct Topology {
    topics: [(String, Feed); 4],
}

impl Topology {
    /// Stream index of the clickstream.
    pub const CLICKSTREAM: u8 = 0;
    /// Stream index of the orders stream (co-partitioned with clickstream).
    pub const ORDERS: u8 = 1;
    /// Stream index of ad spend.
    pub const SPEND: u8 = 2;
    /// Stream index of the internal customer-facts topic.
    pub const FACTS: u8 = 3;

    /// The topics named in `names`.
    pub fn new(names: &TopicNames) -> Self {
        Topology {
            topics: [
                (names.clickstream.clone(), Feed::Input(Stream::Clickstream)),
                (names.orders.clone(), Feed::Input(Stream::Orders)),
                (names.spend.clone(), Feed::Input(Stream::Spend)),
                (names.customer_facts.clone(), Feed::CustomerFacts),
            ],
        }
    }

    /// The source of `partition` of `topic`, if the pipeline reads `topic`.
    pub fn source(&self, topic: &str, partition: i32) -> Option<Source> {
        let stream = self.topics.iter().position(|(n, _)| n == topic)?;
        Some(Source {
            stream: stream as u8,
            partition,
        })
    }

    /// The topic `source` is read from.
    pub fn topic(&self, source: Source) -> Option<&str> {
        let (name, _) = self.topics.get(usize::from(source.stream))?;
        Some(name)
    }

    /// What `source` carries.
    pub fn feed(&self, source: Source) -> Option<Feed> {
        self.topics
            .get(usize::from(source.stream))
            .map(|(_, feed)| *feed)
    }

    /// Whether `source` is a customer-facts partition.
    pub fn is_facts(source: Source) -> bool {
        source.stream == Self::FACTS
    }

    /// Every topic to subscribe to: the input streams, then customer facts.
    pub fn topics(&self) -> Vec<String> {
        self.topics.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The input streams' topics (customer facts left out).
    pub fn input_topics(&self) -> Vec<String> {
        self.topics
            .iter()
            .filter(|(_, feed)| matches!(feed, Feed::Input(_)))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The customer-facts topic.
    pub fn facts_topic(&self) -> &str {
        &self.topics[usize::from(Self::FACTS)].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_maps_to_its_source_and_back() {
        let names = TopicNames::default();
        let topology = Topology::new(&names);
        for (topic, stream, feed) in [
            (&names.clickstream, Topology::CLICKSTREAM, "clickstream"),
            (&names.orders, Topology::ORDERS, "orders"),
            (&names.spend, Topology::SPEND, "spend"),
            (&names.customer_facts, Topology::FACTS, "customer_facts"),
        ] {
            let source = topology.source(topic, 7).expect("a topic read");
            assert_eq!(source.stream, stream);
            assert_eq!(source.partition, 7);
            assert_eq!(topology.topic(source), Some(topic.as_str()));
            assert_eq!(topology.feed(source).map(Feed::as_str), Some(feed));
        }
        assert_eq!(
            topology.source(&names.dead_letter, 0),
            None,
            "written, not read"
        );
        assert_eq!(topology.topics().len(), 4);
        assert_eq!(topology.input_topics().len(), 3);
        assert_eq!(topology.facts_topic(), names.customer_facts);
        let unknown = Source {
            stream: 9,
            partition: 0,
        };
        assert_eq!(topology.topic(unknown), None);
    }
}

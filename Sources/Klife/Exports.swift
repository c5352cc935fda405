// `import Klife` alone is enough to use the whole public API of Klife.
//
// Public declarations of Klife name types of the wire codec: `RecordHeader` in
// `ProducerRecord.headers` and `ConsumerRecord.headers`, `ApiKey` in
// `KlifeClient.Statistics.requestsSent`, `KafkaErrorCode` in `KlifeError`, `CompressionCodec`
// in the producer settings. Re-exporting the codec module makes those names visible to a user
// who imports Klife only, as its own documentation examples do (`DocsExamplesTests` compiles
// them in a package of their own).
@_exported public import KlifeProtocol

import PilotCore
import Testing

@Suite struct DurationTextTests {
    @Test(arguments: [("30", Int64(30)), ("30s", 30), ("90m", 5_400), ("24h", 86_400), ("7d", 604_800), ("2w", 1_209_600), ("0s", 0)])
    func durationsRead(text: String, seconds: Int64) throws {
        #expect(try DurationText.seconds(text) == seconds)
    }

    @Test(arguments: ["", "m", "-5m", "1.5h", "5y", "9999999999999d", " 5m", "5 m", "٣m"])
    func badDurationsAreRefusedWithTheRule(text: String) {
        #expect { try DurationText.seconds(text) } throws: { "\($0)".hasPrefix("invalid duration") }
    }
}

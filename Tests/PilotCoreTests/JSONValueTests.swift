import PilotCore
import Testing

@Suite struct JSONValueTests {
    @Test func parsesTheSeedMessageAndPrintsItBackInOrder() throws {
        let text = #"{"host":"web-01","cpu_pct":42.1,"load":0.52,"cores":4,"ts":1764100000}"#
        let value = try JSONValue.parse(text)
        #expect(value.description == text)
        #expect(value["cpu_pct"] == .number(42.1))
        #expect(value["host"]?.stringValue == "web-01")
    }

    @Test func handlesEscapesAndUnicode() throws {
        let value = try JSONValue.parse(#"{"a":"line\nbreak \"q\" \u00e9 \ud83d\ude00 \/","b":[true,false,null,-0.5e3]}"#)
        #expect(value["a"] == .string("line\nbreak \"q\" é 😀 /"))
        #expect(value["b"] == .array([.bool(true), .bool(false), .null, .number(-500)]))
        #expect(try JSONValue.parse(value.description) == value)
    }

    @Test(arguments: [
        ("", "unexpected end of input"),
        ("{", "expected a string key"),
        (#"{"a":1,}"#, "expected a string key"),
        (#"{"a" 1}"#, "expected ':'"),
        (#"{"a":1 "b":2}"#, "expected ',' or '}'"),
        (#"[1,2"#, "unexpected end of input in array"),
        (#"{"a":01}"#, "leading zero"),
        (#"{"a":1.}"#, "digit after '.'"),
        (#"{"a":1e}"#, "digit in exponent"),
        (#"{"a":1e999}"#, "out of range"),
        (#"{"a":"\x"}"#, "invalid escape"),
        (#"{"a":"\ud800"}"#, "unpaired surrogate"),
        ("{\"a\":\"tab\there\"}", "control character"),
        (#"{"a":1,"a":2}"#, "duplicate key \"a\""),
        (#"{"a":1} x"#, "unexpected text after"),
        (#"{"a":tru}"#, "expected 'true'"),
        (#"{"a":NaN}"#, "unexpected character 'N'"),
    ])
    func refusesBadJSONWithItsPosition(text: String, reason: String) {
        #expect { try JSONValue.parse(text) } throws: { "\($0)".hasPrefix("invalid JSON at byte") && "\($0)".contains(reason) }
    }

    @Test func boundsDepthAndSize() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect { try JSONValue.parse(deep) } throws: { "\($0)".contains("nested deeper than 32 levels") }
        let big = "\"" + String(repeating: "x", count: 70_000) + "\""
        #expect { try JSONValue.parse(big) } throws: { "\($0)".contains("larger than 65536 bytes") }
        #expect(throws: Never.self) { try JSONValue.parse(big, limits: .init(maxBytes: 100_000)) }
    }

    @Test func refusesInvalidUTF8() {
        #expect { try JSONValue.parse([0x22, 0xFF, 0xFE, 0x22]) } throws: { "\($0)".contains("not valid UTF-8") }
    }

    @Test func formatsNumbersAsTheSeedDoes() {
        #expect(JSONValue.format(4) == "4")
        #expect(JSONValue.format(-0.0) == "0")
        #expect(JSONValue.format(42.1) == "42.1")
        #expect(JSONValue.format(1764100000) == "1764100000")
        #expect(JSONValue.format(.nan) == "null")
        #expect(JSONValue.format(.infinity) == "null")
        #expect(JSONValue.format(1e300) == "1e+300")
    }

    @Test func escapesControlCharactersOnOutput() {
        #expect(JSONValue.string("a\u{1}b\"\\").description == #""a\u0001b\"\\""#)
    }

    /// Small and large objects alike: a repeated key keeps its first place
    /// and takes its last value.
    @Test func aRepeatedKeyKeepsItsPlaceAndTakesTheLastValue() {
        for size in [3, 40] {
            var members = (0..<size).map { ("k\($0)", JSONValue.number(Double($0))) }
            members.append(("k1", .string("last")))
            let object = JSONObject(members)
            #expect(object.count == size)
            #expect(object.keys == (0..<size).map { "k\($0)" })
            #expect(object["k1"] == .string("last") && object["k0"] == .number(0))
        }
    }

    /// Each character that needs an escape is found alone, at either end,
    /// and text without one (including non-ASCII) is written as it is.
    @Test func escapesEachCharacterThatNeedsItAndNothingElse() throws {
        for (text, written) in [("\"", #""\"""#), ("\\", #""\\""#), ("\n", #""\n""#), ("\t", #""\t""#), ("\r", #""\r""#),
                                ("\u{1F}", #""\u001f""#), ("x\n", #""x\n""#), ("\nx", #""\nx""#),
                                ("plain", #""plain""#), ("héllo ✓", #""héllo ✓""#), ("", #""""#)] {
            #expect(JSONValue.string(text).description == written, "\(written)")
            #expect(try JSONValue.parse(JSONValue.string(text).description) == .string(text))
        }
    }
}

@Suite struct MetricMessageTests {
    @Test func readsTheSeedShape() throws {
        let message = try MetricMessage(text: #"{"host":"web-01","cpu_pct":42.1,"load":0.52,"cores":4,"ts":1764100000}"#)
        #expect(message.host == "web-01")
        #expect(message.timestamp == 1_764_100_000)
        #expect(message.samples.map(\.metric) == ["cpu_pct", "load", "cores"])
        #expect(message.samples.map(\.value) == [42.1, 0.52, 4])
        #expect(message.samples.allSatisfy { $0.timestamp == 1_764_100_000_000 && $0.labels.elementsEqual([("host", "web-01")], by: ==) })
        #expect(message.json.description == #"{"host":"web-01","cpu_pct":42.1,"load":0.52,"cores":4,"ts":1764100000}"#)
    }

    @Test func buildsTheSeedShapeWithHostFirstAndTsLast() {
        let message = MetricMessage(host: "db-01", timestamp: 1_764_100_060,
                                    fields: JSONObject([("disk_pct", .number(91)), ("mounts", .array([]))]))
        #expect(message.json.description == #"{"host":"db-01","disk_pct":91,"mounts":[],"ts":1764100060}"#)
    }

    @Test(arguments: [
        (#"[1]"#, "must be a JSON object"),
        (#"{"cpu_pct":1,"ts":1}"#, "\"host\" must be a non-empty string"),
        (#"{"host":"","ts":1}"#, "\"host\" must be a non-empty string"),
        (#"{"host":"a"}"#, "\"ts\" must be a whole number"),
        (#"{"host":"a","ts":1.5}"#, "\"ts\" must be a whole number"),
        (#"{"host":"a","ts":-1}"#, "\"ts\" must be a whole number"),
        (#"{"host":"a","ts":"now"}"#, "\"ts\" must be a whole number"),
        (#"{"host":"a","ts":1"#, "invalid JSON at byte"),
    ])
    func refusesMalformedMessages(text: String, reason: String) {
        #expect { try MetricMessage(text: text) } throws: { "\($0)".hasPrefix("invalid metric message") && "\($0)".contains(reason) }
    }
}

@Suite struct JSONValidateTests {
    /// `validate` accepts exactly the objects `parse` accepts, and refuses
    /// with the same error where parse fails.
    @Test(arguments: [
        #"{"host":"web-07","cpu_pct":42.1,"load":0.52,"cores":4,"ts":1764100000}"#,
        " {\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\"} ", "{}", "[1]", "\"text\"", "42", "{\"a\":1,\"a\":2}", "{\"a\":1e999}",
        "{\"a\":\"\\ud800\"}", "{\"a\":01}", "{\"a\":1", "{\"a\":1} x", "{\"a\":\"\u{01}\"}", "{\"a\":tru}",
        "{" + (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + ",\"k39\":0}",
        String(repeating: "{\"a\":", count: 40) + "1" + String(repeating: "}", count: 40),
    ])
    func validateAgreesWithParse(text: String) {
        let bytes = Array(text.utf8)
        let parsed = Result { () throws(JSONError) in try JSONValue.parse(bytes) }
        let validated = Result { () throws(JSONError) in try JSONValue.validate(bytes) }
        switch (parsed, validated) {
        case (.success(.object), .success): break
        case (.success, .failure(let error)): #expect(error.reason == "the payload must be a JSON object")
        case let (.failure(parseError), .failure(validateError)): #expect(parseError == validateError)
        default: Issue.record("parse \(parsed) but validate \(validated) for \(text)")
        }
    }

    @Test func validateRefusesInvalidUTF8AndOversizedInput() {
        #expect(throws: JSONError.self) { try JSONValue.validate([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D]) }
        #expect(throws: JSONError.self) { try JSONValue.validate(Array("{\"a\":\"\(String(repeating: "x", count: 100))\"}".utf8), limits: .init(maxBytes: 50)) }
    }
}

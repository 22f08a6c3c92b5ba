import PilotCore
import Testing

@Suite struct PercentEncodingTests {
    @Test func decodesEscapesAndFormSpacesAndReportsBadEscapes() {
        #expect(PercentEncoding.decode("a%20b+c%2Bd", plusIsSpace: true) == ("a b c+d", false))
        #expect(PercentEncoding.decode("p%40ss+w", plusIsSpace: false) == ("p@ss+w", false))
        #expect(PercentEncoding.decode("%e2%82%AC", plusIsSpace: false) == ("€", false))
        #expect(PercentEncoding.decode("100%", plusIsSpace: true) == ("100%", true))
        #expect(PercentEncoding.decode("%zz%4", plusIsSpace: true) == ("%zz%4", true))
        #expect(PercentEncoding.decode("%+f", plusIsSpace: true) == ("% f", true))
    }
}

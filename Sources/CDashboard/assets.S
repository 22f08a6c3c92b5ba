// The dashboard's files, in the binary's read-only data. `.incbin` finds
// web/ through the target's header search path; Chart.js comes from
// Debian's libjs-chart.js at build time (kept out of git).
//
// The assembler does not record .incbin files as dependencies: after
// editing web/, touch this file (make does; DashboardAssetTests fails on a
// stale build).
#define EMBED(symbol, file) \
    .global symbol##_start; .hidden symbol##_start; .global symbol##_end; .hidden symbol##_end; \
    .balign 16; symbol##_start: .incbin file; symbol##_end: .byte 0

    .section .rodata
EMBED(index_html, "index.html")
EMBED(app_css, "app.css")
EMBED(app_js, "app.js")
EMBED(icon_svg, "icon.svg")
EMBED(chart_js, "/usr/share/javascript/chart.js/chart.min.js")

    .section .note.GNU-stack,"",@progbits

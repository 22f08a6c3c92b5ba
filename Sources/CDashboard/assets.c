#include <string.h>
#include "dashboard.h"

// Symbols from assets.S: each file's first byte and the byte after its last.
#define ASSET(symbol) extern const unsigned char symbol##_start[], symbol##_end[];
ASSET(index_html) ASSET(app_css) ASSET(app_js) ASSET(icon_svg) ASSET(chart_js)
#undef ASSET

static const struct {
    const char *name;
    const unsigned char *start, *end;
} assets[] = {
    {"index.html", index_html_start, index_html_end},
    {"app.css", app_css_start, app_css_end},
    {"app.js", app_js_start, app_js_end},
    {"icon.svg", icon_svg_start, icon_svg_end},
    {"chart.min.js", chart_js_start, chart_js_end},
};

const unsigned char *pilot_dashboard_asset(const char *name, size_t *length) {
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
        if (strcmp(assets[i].name, name) == 0) {
            *length = (size_t)(assets[i].end - assets[i].start);
            return assets[i].start;
        }
    }
    *length = 0;
    return NULL;
}

const char *pilot_dashboard_asset_name(size_t index) {
    return index < sizeof assets / sizeof assets[0] ? assets[index].name : NULL;
}

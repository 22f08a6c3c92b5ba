#ifndef PILOT_DASHBOARD_H
#define PILOT_DASHBOARD_H
#include <stddef.h>

/// The dashboard's files, embedded at build time (assets.S): the bytes of
/// the one named `name` ("index.html", "app.js", "chart.min.js", ...) and
/// their length, or NULL for a name that is not embedded.
const unsigned char *pilot_dashboard_asset(const char *name, size_t *length);

/// The embedded names, one per call from 0 until NULL.
const char *pilot_dashboard_asset_name(size_t index);

#endif

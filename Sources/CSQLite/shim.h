#ifndef PILOT_CSQLITE_SHIM_H
#define PILOT_CSQLITE_SHIM_H
#include <sqlite3.h>
#endif

/**
 * @file aiplat/aiplat.h
 * @brief The umbrella header: include this one.
 */
#ifndef AIPLAT_AIPLAT_H
#define AIPLAT_AIPLAT_H

#include "version.h"
#include "common.h"
#include "log.h"
#include "config.h"
#include "pipeline.h"

#endif /* AIPLAT_AIPLAT_H */

/**
 * @file aiplat/config.h
 * @brief Settings from the environment, with the platform's defaults.
 *
 * Every setting is an environment variable (`NATS_URL`, `HEALTH_PORT`, ...).
 * For a variable `NAME`, `NAME_FILE` may instead name a file whose content
 * (one trailing newline removed) is the value: how Kubernetes mounts secrets.
 * Setting both `NAME` and `NAME_FILE` is an error. The settings the library
 * knows, their defaults and whether they are secret are listed in one table,
 * readable with aiplat_config_setting_count() and friends and printed in the
 * README; names outside the table may be read too (no default).
 *
 * A value that fails validation produces ::AIPLAT_ERR_CONFIG with a message
 * naming the variable and what is wrong; the value of a secret setting is
 * never repeated in a message or a log record.
 *
 * Thread: a config handle may be shared by threads; getters are
 * serialised inside. Values are read from the environment the first time
 * each is asked for and then kept, so later changes to the environment are
 * not seen by that handle.
 */
#ifndef AIPLAT_CONFIG_H
#define AIPLAT_CONFIG_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aiplat_config aiplat_config;

/** Longest value accepted from an environment variable, in bytes. */
#define AIPLAT_CONFIG_MAX_VALUE 4096
/** Longest value accepted from a `NAME_FILE` file, in bytes. */
#define AIPLAT_CONFIG_MAX_FILE_VALUE 65536

/**
 * Create a handle reading the process environment. Free with destroy.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_config_create(aiplat_config **out);

/**
 * Destroy a handle; strings it returned become invalid. NULL is a no-op.
 * @since 1.0
 */
AIPLAT_API void aiplat_config_destroy(aiplat_config *cfg);

/**
 * Set @p name to @p value in this handle only (copied), taking precedence
 * over the environment. A NULL @p value removes the override and any
 * value, so the default applies. Strings previously returned for
 * @p name stay valid until the handle is destroyed.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_config_set(aiplat_config *cfg, const char *name,
                                           const char *value);

/**
 * True when @p name has a value from the environment, a file or a set().
 * @since 1.0
 */
AIPLAT_API bool aiplat_config_is_set(aiplat_config *cfg, const char *name);

/**
 * The value of @p name, or its default. @p *out is NULL when there is
 * neither. Borrowed: valid until the handle is destroyed.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_config_get_string(aiplat_config *cfg,
                                                  const char *name,
                                                  const char **out);

/**
 * Like get_string, but a missing or empty value is ::AIPLAT_ERR_CONFIG.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_config_require(aiplat_config *cfg,
                                               const char *name,
                                               const char **out);

/**
 * A decimal integer in [@p min, @p max].
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_config_get_int(aiplat_config *cfg,
                                               const char *name, int64_t min,
                                               int64_t max, int64_t *out);

/**
 * A decimal number in [@p min, @p max] (e.g. a temperature).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_config_get_double(aiplat_config *cfg,
                                                  const char *name, double min,
                                                  double max, double *out);

/**
 * `true/false`, `1/0`, `yes/no`, `on/off`, any case.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_config_get_bool(aiplat_config *cfg,
                                                const char *name, bool *out);

/**
 * A duration such as `30s`, `500ms`, `1.5s`, `2m`, `1h30m` (units `ms`,
 * `s`, `m`, `h`; a bare number is rejected), in milliseconds.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_config_get_duration_ms(aiplat_config *cfg,
                                                       const char *name,
                                                       int64_t *out);

/**
 * An absolute URL `scheme://host[:port][/path]` with a scheme of
 * http, https, nats, tls, ws or wss; a port, if given, in 1..65535.
 * Borrowed like get_string.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_config_get_url(aiplat_config *cfg,
                                               const char *name,
                                               const char **out);

/**
 * Check every setting of the table that has a value against its type and
 * return the first failure (a service calls this at start and exits with
 * the message).
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_config_validate(aiplat_config *cfg);

/**
 * Copy the detail of the handle's last failure into @p buf.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_config_last_error(aiplat_config *cfg,
                                                  char *buf, size_t buflen);

/**
 * Parse a duration string as aiplat_config_get_duration_ms() does.
 * @since 1.0
 */
AIPLAT_API aiplat_status aiplat_duration_parse_ms(const char *text,
                                                  int64_t *out);

/**
 * Number of settings in the table.
 * @since 1.0
 */
AIPLAT_API size_t aiplat_config_setting_count(void);
/**
 * Name of setting @p i, or NULL past the end. Static.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_config_setting_name(size_t i);
/**
 * Default of setting @p i, or NULL when it has none. Static.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_config_setting_default(size_t i);
/**
 * One-line description of setting @p i. Static.
 * @since 1.0
 */
AIPLAT_API const char *aiplat_config_setting_description(size_t i);
/**
 * True when @p name holds a secret (never logged or echoed).
 * @since 1.0
 */
AIPLAT_API bool aiplat_config_is_secret(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* AIPLAT_CONFIG_H */

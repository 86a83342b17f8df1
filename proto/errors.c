/*
 * errors.c - names and messages for ringkv's error codes (see errors.h).
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "proto/errors.h"

static const struct {
    const char *code;
    const char *msg;
} rk_err_table[] = {
#define RK_ERR_ROW_(name, code, msg) {code, msg},
    RK_ERR_MAP(RK_ERR_ROW_)
#undef RK_ERR_ROW_
};

static bool err_is_ours(int err)
{
    return err > RK_ERR_FIRST_ && err < RK_ERR_LAST_;
}

const char *rk_err_code(int err)
{
    if (err == 0)
        return "ok";
    if (err_is_ours(err))
        return rk_err_table[err - RK_ERR_FIRST_ - 1].code;
    return "system";
}

const char *rk_err_msg(int err)
{
    if (err == 0)
        return "success";
    if (err_is_ours(err))
        return rk_err_table[err - RK_ERR_FIRST_ - 1].msg;
    if (err < 0)
        return strerror(-err);
    return "unknown error";
}

int rk_err_from_code(const char *code, size_t len)
{
    for (size_t i = 0; i < sizeof(rk_err_table) / sizeof(rk_err_table[0]);
         i++) {
        if (strlen(rk_err_table[i].code) == len &&
            memcmp(rk_err_table[i].code, code, len) == 0)
            return RK_ERR_FIRST_ + 1 + (int)i;
    }
    return RK_EINTERNAL;
}

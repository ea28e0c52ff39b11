/*
 * Baton's record protection: seals and opens whole TLS 1.3 records (RFC 8446 section
 * 5.2-5.3) with the OpenSSL that Node itself links and exports, into memory the caller
 * gives. The contract is `RecordAead` in src/tls/crypto/record-aead.ts; the
 * `node:crypto` implementation there is the reference these bytes are tested against.
 *
 * One context per traffic key and direction: one EVP_CIPHER_CTX initialised once with
 * cipher and key; per record only the nonce (IV XOR sequence number) is set. No
 * allocation per record: typed arrays are read in place (they may be views of a
 * SharedArrayBuffer), the type byte and padding are encrypted from stack memory in
 * the same AEAD stream as the content. Every offset and length is checked before
 * anything is written; a bad argument throws a TypeError or RangeError. Nothing is
 * ever printed.
 *
 * JS API (all synchronous):
 *   create(aead: 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305', key, iv, direction: 'seal' | 'open') -> ctx
 *   sealRecord(ctx, seq, type, content, padding, out, at) -> bytes written
 *   openRecord(ctx, seq, record, out, at) -> inner plaintext length, or -1 when the tag fails
 *   free(ctx)   (idempotent; a finalizer frees what was not freed)
 *   releaseFreeMemory() -> Promise<boolean>: free heap memory given back to the OS (off the event loop)
 *
 * A context also serves the other direction when asked to: a second EVP_CIPHER_CTX is
 * then initialised once from the context's copy of the key (wiped on free).
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <stdint.h>
#include <stdio.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#define HEADER_LEN 5
#define TAG_LEN 16
#define NONCE_LEN 12
#define MAX_KEY_LEN 32
/* The 16-bit length of a TLSCiphertext header. */
#define MAX_BODY_LEN 0xffff
/* 2^53 - 1: the largest integer a JS number holds exactly. */
#define MAX_SAFE_INTEGER 9007199254740991.0

enum { DIR_SEAL = 0, DIR_OPEN = 1 };

typedef struct {
  const EVP_CIPHER *cipher;
  /* [DIR_SEAL], [DIR_OPEN]; the one for the creation direction is made at create(). */
  EVP_CIPHER_CTX *evp[2];
  int freed;
  size_t key_len;
  unsigned char key[MAX_KEY_LEN];
  unsigned char iv[NONCE_LEN];
} aead_ctx;

static const napi_type_tag AEAD_TAG = {0x62a7c0e1d4f3b295ULL, 0x9e1d5a3c7b2f4e68ULL};

/* Zero bytes for the padding beyond what the per-record stack buffer holds. */
static const unsigned char ZEROS[1024];

/* ---------------------------------------------------------------------------------- */
/* argument helpers: each returns 0 after throwing, 1 on success */

/* A failed N-API call: keep its pending exception, or throw a plain one. */
static int napi_failed(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && !pending) napi_throw_error(env, NULL, "N-API call failed");
  return 0;
}

#define CHECK_NAPI(call)                          \
  do {                                            \
    if ((call) != napi_ok) return napi_failed(env); \
  } while (0)

static int throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return 0;
}

static int throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return 0;
}

/* A Uint8Array (or Buffer) view: its data pointer and byte length. */
static int get_bytes(napi_env env, napi_value v, const char *what, unsigned char **data, size_t *len) {
  bool is_ta = false;
  CHECK_NAPI(napi_is_typedarray(env, v, &is_ta));
  if (!is_ta) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a Uint8Array", what);
    return throw_type(env, msg);
  }
  napi_typedarray_type type;
  size_t length = 0;
  void *p = NULL;
  CHECK_NAPI(napi_get_typedarray_info(env, v, &type, &length, &p, NULL, NULL));
  if (type != napi_uint8_array) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a Uint8Array", what);
    return throw_type(env, msg);
  }
  if (p == NULL && length != 0) return throw_type(env, "a Uint8Array has no memory (detached?)");
  *data = (unsigned char *)p;
  *len = length;
  return 1;
}

/* A non-negative integer number <= max. */
static int get_index(napi_env env, napi_value v, const char *what, double max, uint64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a number", what);
    return throw_type(env, msg);
  }
  /* NaN fails the first comparison. */
  if (!(d >= 0 && d <= max) || (double)(uint64_t)d != d) {
    char msg[112];
    snprintf(msg, sizeof msg, "%s must be an integer from 0 to %.0f", what, max);
    return throw_range(env, msg);
  }
  *out = (uint64_t)d;
  return 1;
}

static int get_ctx(napi_env env, napi_value v, aead_ctx **out) {
  napi_valuetype t;
  CHECK_NAPI(napi_typeof(env, v, &t));
  bool ok = false;
  if (t == napi_object) CHECK_NAPI(napi_check_object_type_tag(env, v, &AEAD_TAG, &ok));
  if (!ok) return throw_type(env, "not a record AEAD context");
  void *p = NULL;
  CHECK_NAPI(napi_unwrap(env, v, &p));
  aead_ctx *c = (aead_ctx *)p;
  if (c == NULL || c->freed) return throw_type(env, "record AEAD used after free()");
  *out = c;
  return 1;
}

/* ---------------------------------------------------------------------------------- */
/* contexts */

static void release(aead_ctx *c) {
  if (c->freed) return;
  c->freed = 1;
  for (int i = 0; i < 2; i++) {
    /* Frees the provider's cipher state, which clears the key schedule. */
    EVP_CIPHER_CTX_free(c->evp[i]);
    c->evp[i] = NULL;
  }
  OPENSSL_cleanse(c->key, sizeof c->key);
  OPENSSL_cleanse(c->iv, sizeof c->iv);
}

static void finalize_ctx(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  aead_ctx *c = (aead_ctx *)data;
  release(c);
  free(c);
}

/*
 * The three ciphers, fetched from OpenSSL's default provider once for the process and
 * shared by every thread (a fetched EVP_CIPHER is immutable). Initialising a context
 * with the legacy EVP_aes_128_gcm() object makes OpenSSL 3 fetch the implementation
 * again at every initialisation, a few microseconds each time: a handshake makes
 * several contexts. Where the fetch fails, the legacy object still works.
 */
static EVP_CIPHER *fetched[3];

static const EVP_CIPHER *fetched_cipher(int i, const char *name, const EVP_CIPHER *legacy) {
  EVP_CIPHER *c = __atomic_load_n(&fetched[i], __ATOMIC_ACQUIRE);
  if (c != NULL) return c;
  EVP_CIPHER *f = EVP_CIPHER_fetch(NULL, name, NULL);
  if (f == NULL) {
    ERR_clear_error();
    return legacy;
  }
  EVP_CIPHER *expected = NULL;
  if (!__atomic_compare_exchange_n(&fetched[i], &expected, f, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    /* Another thread fetched it first: use theirs. */
    EVP_CIPHER_free(f);
    return expected;
  }
  return f;
}

/* The EVP context for a direction, initialised with cipher and key on first use. */
static EVP_CIPHER_CTX *evp_for(aead_ctx *c, int dir) {
  if (c->evp[dir] != NULL) return c->evp[dir];
  EVP_CIPHER_CTX *e = EVP_CIPHER_CTX_new();
  if (e == NULL) return NULL;
  int ok = dir == DIR_SEAL ? EVP_EncryptInit_ex(e, c->cipher, NULL, c->key, NULL)
                           : EVP_DecryptInit_ex(e, c->cipher, NULL, c->key, NULL);
  if (ok != 1 || EVP_CIPHER_CTX_get_key_length(e) != (int)c->key_len || EVP_CIPHER_CTX_get_iv_length(e) != NONCE_LEN) {
    EVP_CIPHER_CTX_free(e);
    ERR_clear_error();
    return NULL;
  }
  c->evp[dir] = e;
  return e;
}

static napi_value js_create(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 4) {
    throw_type(env, "create(aead, key, iv, direction) takes 4 arguments");
    return NULL;
  }
  char name[24];
  size_t name_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_len) != napi_ok) {
    throw_type(env, "aead must be a string");
    return NULL;
  }
  const EVP_CIPHER *cipher;
  size_t key_len;
  if (strcmp(name, "aes-128-gcm") == 0) {
    cipher = fetched_cipher(0, "AES-128-GCM", EVP_aes_128_gcm());
    key_len = 16;
  } else if (strcmp(name, "aes-256-gcm") == 0) {
    cipher = fetched_cipher(1, "AES-256-GCM", EVP_aes_256_gcm());
    key_len = 32;
  } else if (strcmp(name, "chacha20-poly1305") == 0) {
    cipher = fetched_cipher(2, "ChaCha20-Poly1305", EVP_chacha20_poly1305());
    key_len = 32;
  } else {
    throw_type(env, "aead must be 'aes-128-gcm', 'aes-256-gcm' or 'chacha20-poly1305'");
    return NULL;
  }
  unsigned char *key, *iv;
  size_t klen, ivlen;
  if (!get_bytes(env, argv[1], "key", &key, &klen)) return NULL;
  if (!get_bytes(env, argv[2], "iv", &iv, &ivlen)) return NULL;
  if (klen != key_len) {
    throw_range(env, key_len == 16 ? "key must be 16 bytes for aes-128-gcm" : "key must be 32 bytes for this AEAD");
    return NULL;
  }
  if (ivlen != NONCE_LEN) {
    throw_range(env, "iv must be 12 bytes");
    return NULL;
  }
  char dir_name[8];
  size_t dir_len = 0;
  if (napi_get_value_string_utf8(env, argv[3], dir_name, sizeof dir_name, &dir_len) != napi_ok ||
      (strcmp(dir_name, "seal") != 0 && strcmp(dir_name, "open") != 0)) {
    throw_type(env, "direction must be 'seal' or 'open'");
    return NULL;
  }
  int dir = dir_name[0] == 's' ? DIR_SEAL : DIR_OPEN;

  aead_ctx *c = (aead_ctx *)calloc(1, sizeof *c);
  if (c == NULL) {
    napi_throw_error(env, NULL, "out of memory creating a record AEAD context");
    return NULL;
  }
  c->cipher = cipher;
  c->key_len = key_len;
  memcpy(c->key, key, key_len);
  memcpy(c->iv, iv, NONCE_LEN);
  if (evp_for(c, dir) == NULL) {
    release(c);
    free(c);
    napi_throw_error(env, NULL, "OpenSSL could not initialise the cipher");
    return NULL;
  }
  napi_value obj;
  if (napi_create_object(env, &obj) != napi_ok || napi_type_tag_object(env, obj, &AEAD_TAG) != napi_ok ||
      napi_wrap(env, obj, c, finalize_ctx, NULL, NULL) != napi_ok) {
    release(c);
    free(c);
    return NULL;
  }
  return obj;
}

static napi_value js_free(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1) {
    throw_type(env, "free(ctx) takes 1 argument");
    return NULL;
  }
  napi_valuetype t;
  bool ok = false;
  if (napi_typeof(env, argv[0], &t) != napi_ok) return NULL;
  if (t == napi_object && napi_check_object_type_tag(env, argv[0], &AEAD_TAG, &ok) != napi_ok) return NULL;
  if (!ok) {
    throw_type(env, "not a record AEAD context");
    return NULL;
  }
  void *p = NULL;
  if (napi_unwrap(env, argv[0], &p) != napi_ok) return NULL;
  /* The struct itself stays until the finalizer: a later call sees `freed`. */
  if (p != NULL) release((aead_ctx *)p);
  return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* records */

static void make_nonce(const aead_ctx *c, uint64_t seq, unsigned char nonce[NONCE_LEN]) {
  memcpy(nonce, c->iv, NONCE_LEN);
  for (int i = 0; i < 8; i++) nonce[NONCE_LEN - 1 - i] ^= (unsigned char)(seq >> (8 * i));
}

/* Whether [a, a+alen) and [b, b+blen) share a byte. */
static int overlaps(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen) {
  if (alen == 0 || blen == 0) return 0;
  uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
  return pa < pb + blen && pb < pa + alen;
}

static int encrypt_update(EVP_CIPHER_CTX *e, unsigned char *out, const unsigned char *in, size_t len, size_t *written) {
  int n = 0;
  if (len == 0) return 1;
  if (EVP_EncryptUpdate(e, out, &n, in, (int)len) != 1 || n < 0) return 0;
  *written += (size_t)n;
  return 1;
}

static napi_value js_seal(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 7) {
    throw_type(env, "sealRecord(ctx, seq, type, content, padding, out, at) takes 7 arguments");
    return NULL;
  }
  aead_ctx *c;
  uint64_t seq, type, padding, at;
  unsigned char *content, *out;
  size_t content_len, out_len;
  if (!get_ctx(env, argv[0], &c)) return NULL;
  if (!get_index(env, argv[1], "seq", MAX_SAFE_INTEGER, &seq)) return NULL;
  if (!get_index(env, argv[2], "type", 255, &type)) return NULL;
  if (!get_bytes(env, argv[3], "content", &content, &content_len)) return NULL;
  if (!get_index(env, argv[4], "padding", MAX_BODY_LEN, &padding)) return NULL;
  if (!get_bytes(env, argv[5], "out", &out, &out_len)) return NULL;
  if (!get_index(env, argv[6], "at", MAX_SAFE_INTEGER, &at)) return NULL;

  if (content_len > MAX_BODY_LEN || content_len + 1 + padding + TAG_LEN > MAX_BODY_LEN) {
    throw_range(env, "record too long: content + 1 + padding + 16 must be at most 65535 bytes");
    return NULL;
  }
  const size_t inner_len = content_len + 1 + (size_t)padding;
  const size_t body_len = inner_len + TAG_LEN;
  const size_t total = HEADER_LEN + body_len;
  if (at > out_len || out_len - at < total) {
    throw_range(env, "out is too small for the sealed record at this offset");
    return NULL;
  }
  EVP_CIPHER_CTX *e = evp_for(c, DIR_SEAL);
  if (e == NULL) {
    napi_throw_error(env, NULL, "OpenSSL could not initialise the cipher");
    return NULL;
  }

  unsigned char *rec = out + at;
  unsigned char *body = rec + HEADER_LEN;
  /* The header first, as the reference does (it is also the additional data). */
  unsigned char header[HEADER_LEN] = {0x17, 0x03, 0x03, (unsigned char)(body_len >> 8), (unsigned char)(body_len & 0xff)};
  memcpy(rec, header, HEADER_LEN);
  /* Content overlapping the body but not in place: move it into place, then seal in place. */
  const unsigned char *src = content;
  if (content_len && src != body && overlaps(src, content_len, body, inner_len)) {
    memmove(body, src, content_len);
    src = body;
  }

  unsigned char nonce[NONCE_LEN];
  make_nonce(c, seq, nonce);
  /* The type byte and the first padding zeros, encrypted in one update after the content. */
  unsigned char tail[256];
  size_t tail_len = 1 + (padding < sizeof tail - 1 ? (size_t)padding : sizeof tail - 1);
  tail[0] = (unsigned char)type;
  memset(tail + 1, 0, tail_len - 1);
  size_t rest = (size_t)padding - (tail_len - 1);

  size_t w = 0;
  int n = 0;
  int ok = EVP_EncryptInit_ex(e, NULL, NULL, NULL, nonce) == 1 &&
           EVP_EncryptUpdate(e, NULL, &n, header, HEADER_LEN) == 1 &&
           encrypt_update(e, body, src, content_len, &w) &&
           encrypt_update(e, body + w, tail, tail_len, &w);
  while (ok && rest > 0) {
    size_t chunk = rest < sizeof ZEROS ? rest : sizeof ZEROS;
    ok = encrypt_update(e, body + w, ZEROS, chunk, &w);
    rest -= chunk;
  }
  /* Final writes nothing for these stream-like AEADs; w == inner_len is checked. */
  ok = ok && w == inner_len && EVP_EncryptFinal_ex(e, body + w, &n) == 1 && n == 0 &&
       EVP_CIPHER_CTX_ctrl(e, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, body + inner_len) == 1;
  OPENSSL_cleanse(tail, sizeof tail);
  if (!ok) {
    ERR_clear_error();
    OPENSSL_cleanse(rec, total);
    napi_throw_error(env, NULL, "OpenSSL failed to seal the record");
    return NULL;
  }
  napi_value result;
  if (napi_create_uint32(env, (uint32_t)total, &result) != napi_ok) return NULL;
  return result;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 5) {
    throw_type(env, "openRecord(ctx, seq, record, out, at) takes 5 arguments");
    return NULL;
  }
  aead_ctx *c;
  uint64_t seq, at;
  unsigned char *record, *out;
  size_t record_len, out_len;
  if (!get_ctx(env, argv[0], &c)) return NULL;
  if (!get_index(env, argv[1], "seq", MAX_SAFE_INTEGER, &seq)) return NULL;
  if (!get_bytes(env, argv[2], "record", &record, &record_len)) return NULL;
  if (!get_bytes(env, argv[3], "out", &out, &out_len)) return NULL;
  if (!get_index(env, argv[4], "at", MAX_SAFE_INTEGER, &at)) return NULL;

  napi_value result;
  if (record_len > HEADER_LEN + MAX_BODY_LEN) {
    throw_range(env, "record longer than a TLS record can be (5 + 65535 bytes)");
    return NULL;
  }
  if (record_len < HEADER_LEN + TAG_LEN) {
    if (napi_create_int32(env, -1, &result) != napi_ok) return NULL;
    return result;
  }
  const size_t plain_len = record_len - HEADER_LEN - TAG_LEN;
  if (at > out_len || out_len - at < plain_len) {
    throw_range(env, "out is too small for the opened record at this offset");
    return NULL;
  }
  EVP_CIPHER_CTX *e = evp_for(c, DIR_OPEN);
  if (e == NULL) {
    napi_throw_error(env, NULL, "OpenSSL could not initialise the cipher");
    return NULL;
  }

  unsigned char *dst = out + at;
  /* Header and tag are read before any write, in case out overlaps the record. */
  unsigned char header[HEADER_LEN], tag[TAG_LEN];
  memcpy(header, record, HEADER_LEN);
  memcpy(tag, record + record_len - TAG_LEN, TAG_LEN);
  const unsigned char *src = record + HEADER_LEN;
  if (plain_len && src != dst && overlaps(src, plain_len, dst, plain_len)) {
    memmove(dst, src, plain_len);
    src = dst;
  }

  unsigned char nonce[NONCE_LEN];
  make_nonce(c, seq, nonce);
  int n = 0, m = 0;
  int ok = EVP_DecryptInit_ex(e, NULL, NULL, NULL, nonce) == 1 &&
           EVP_DecryptUpdate(e, NULL, &n, header, HEADER_LEN) == 1;
  if (ok && plain_len) ok = EVP_DecryptUpdate(e, dst, &n, src, (int)plain_len) == 1 && (size_t)n == plain_len;
  ok = ok && EVP_CIPHER_CTX_ctrl(e, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) == 1 &&
       EVP_DecryptFinal_ex(e, dst + plain_len, &m) == 1 && m == 0;
  if (!ok) {
    ERR_clear_error();
    /* No unauthenticated plaintext is left behind. */
    OPENSSL_cleanse(dst, plain_len);
    if (napi_create_int32(env, -1, &result) != napi_ok) return NULL;
    return result;
  }
  if (napi_create_uint32(env, (uint32_t)plain_len, &result) != napi_ok) return NULL;
  return result;
}

/*
 * A burst of handshakes leaves the malloc arenas of the process full of freed memory
 * (OpenSSL's key objects and temporaries) pinned between the cipher contexts of the
 * connections that stayed: glibc gives back only the top of an arena, malloc_trim also
 * the whole free pages inside it, in every thread's arena. That walk and its madvise
 * calls take milliseconds per MiB given back, so it runs on libuv's thread pool, never
 * on an event loop; the promise says whether anything went back. Elsewhere a no-op.
 */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int released;
} Release;

static void release_execute(napi_env env, void *data) {
  (void)env;
  Release *r = data;
#if defined(__GLIBC__)
  r->released = malloc_trim(0);
#else
  r->released = 0;
#endif
}

static void release_complete(napi_env env, napi_status status, void *data) {
  Release *r = data;
  napi_value value;
  if (napi_get_boolean(env, status == napi_ok && r->released != 0, &value) == napi_ok) {
    napi_resolve_deferred(env, r->deferred, value);
  }
  napi_delete_async_work(env, r->work);
  free(r);
}

static napi_value js_release_free_memory(napi_env env, napi_callback_info info) {
  (void)info;
  Release *r = calloc(1, sizeof *r);
  napi_value promise, name;
  if (r == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (napi_create_promise(env, &r->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "baton_release_free_memory", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, release_execute, release_complete, r, &r->work) != napi_ok) {
    free(r);
    return NULL;
  }
  if (napi_queue_async_work(env, r->work) != napi_ok) {
    napi_delete_async_work(env, r->work);
    free(r);
    return NULL;
  }
  return promise;
}

/* ---------------------------------------------------------------------------------- */

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"create", NULL, js_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sealRecord", NULL, js_seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openRecord", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"free", NULL, js_free, NULL, NULL, NULL, napi_enumerable, NULL},
      {"releaseFreeMemory", NULL, js_release_free_memory, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

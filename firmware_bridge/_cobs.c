/* COBS (Cheshire & Baker 1999) for the s2r wire protocol, as a CPython extension.
 *
 * The same byte-for-byte results as the pure-Python reference in firmware_bridge/protocol.py (the tests compare
 * the two on random inputs), and the same loops a motor-board firmware would run (docs/protocol.md). The host
 * uses it where it builds: at 1 kHz the Python COBS loops were half of the codec's cost per frame.
 *
 * encode(data, delimit) -> bytes: the COBS code of data (no 0x00 in it), followed by one 0x00 if delimit.
 * decode(data) -> bytes: the inverse, for data without its delimiter; ValueError if malformed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *cobs_encode(PyObject *self, PyObject *args) {
    Py_buffer in;
    int delimit = 0;
    if (!PyArg_ParseTuple(args, "y*p", &in, &delimit)) return NULL;
    const unsigned char *src = in.buf;
    Py_ssize_t n = in.len;
    /* one code byte per started 254-byte block and per zero, plus the first code byte and the delimiter */
    PyObject *res = PyBytes_FromStringAndSize(NULL, n + n / 254 + 2);
    if (res == NULL) {
        PyBuffer_Release(&in);
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(res);
    unsigned char *dst = out + 1, *code_at = out;
    unsigned char code = 1;
    int after_full_block = 0; /* the last block was 254 bytes long and nothing followed it yet */
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char b = src[i];
        if (b == 0) {
            *code_at = code;
            code_at = dst++;
            code = 1;
            after_full_block = 0;
        } else {
            *dst++ = b;
            after_full_block = 0;
            if (++code == 0xFF) {
                *code_at = code;
                code_at = dst++;
                code = 1;
                after_full_block = 1;
            }
        }
    }
    if (after_full_block) {
        dst--; /* a full block at the very end needs no trailing code byte: give back the one reserved */
    } else {
        *code_at = code;
    }
    if (delimit) *dst++ = 0;
    PyBuffer_Release(&in);
    if (_PyBytes_Resize(&res, dst - out) < 0) return NULL;
    return res;
}

static PyObject *cobs_decode(PyObject *self, PyObject *arg) {
    Py_buffer in;
    if (PyObject_GetBuffer(arg, &in, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *src = in.buf;
    Py_ssize_t n = in.len;
    PyObject *res = PyBytes_FromStringAndSize(NULL, n);
    if (res == NULL) {
        PyBuffer_Release(&in);
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(res), *dst = out;
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned char code = src[i];
        Py_ssize_t end = i + code;
        if (code == 0 || end > n) {
            PyBuffer_Release(&in);
            Py_DECREF(res);
            PyErr_SetString(PyExc_ValueError, "COBS: zero code byte or block runs past the end of the frame");
            return NULL;
        }
        memcpy(dst, src + i + 1, (size_t)(code - 1));
        dst += code - 1;
        if (code != 0xFF && end < n) *dst++ = 0;
        i = end;
    }
    PyBuffer_Release(&in);
    if (_PyBytes_Resize(&res, dst - out) < 0) return NULL;
    return res;
}

static PyMethodDef methods[] = {
    {"encode", cobs_encode, METH_VARARGS, "COBS-encode bytes; append a 0x00 delimiter if the flag is true."},
    {"decode", cobs_decode, METH_O, "COBS-decode bytes without their delimiter; ValueError if malformed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cobs", "COBS codec in C (see protocol.py)", -1, methods};

PyMODINIT_FUNC PyInit__cobs(void) { return PyModule_Create(&module); }

/* The MuJoCo biped's per-control-step inner loop in C: the ideal motor model and mj_step, SUBSTEPS times.
 *
 * The same arithmetic, in the same order, as the pure-Python loop it replaces (sim.motor.MotorModel's ideal
 * path, sim.motor.run_substeps, sim.biped_mujoco.MujocoBiped.substep): IEEE doubles throughout, tanh from the
 * same C library Python's math.tanh calls, compiled with -ffp-contract=off so no multiply-add is fused. Seeded
 * episodes are bit-identical with and without it (tests/sim/test_mjloop.py runs both). What it saves is the
 * interpreter's share of a substep (the Python motor model and the binding's call into mj_step), the largest
 * share of a control step's CPU time after the physics itself (BENCHMARKS.md, "MuJoCo biped speed").
 *
 * It needs no MuJoCo header or library at build time: the caller hands it the address of MuJoCo's mj_step (from
 * the libmujoco the mujoco package loaded) and of the model, the data and its arrays, so the install builds it
 * with a bare C compiler, like firmware_bridge/_cobs.c, and s2r runs the Python loop where it did not build.
 *
 * The sensor reads the biped makes every control step (lidar rays, the feet's ground distance) are here too, for
 * the same reason: the binding's call costs more than MuJoCo's work. The prototypes below are MuJoCo 4.0's
 * (include/mujoco/mujoco.h); sim/_mujoco.py uses this module only with the MuJoCo major version they were
 * checked against.
 *
 * Loop((mj_step, mj_multiRay, mj_geomDistance), model, data, qvel, qfrc, n_motors, owner): a loop bound to one
 *     mjModel/mjData; the addresses are integers (the functions' from ctypes, the rest from ``MjModel._address``,
 *     ``MjData._address`` and the motor dofs' ``qvel``/``qfrc_applied`` views' ``ctypes.data``); ``owner`` is
 *     kept alive as long as the loop.
 * Loop.set_motor(peak_nm, no_load_rad_s, damping_nms_rad, friction_nm): the motor parameters of an episode.
 * Loop.run(commands) -> (applied_nm, motor_nm): one substep per element of ``commands`` (each a sequence of
 *     n_motors torque commands in N·m, after latency); returns the last substep's joint and motor torques.
 * Loop.set_rays(directions, geomgroup, max_range_m): the lidar's unit ray directions (flat x,y,z per ray) and the
 *     geom groups it sees (6 flags).
 * Loop.rays(x_m, z_m) -> ranges (m) from (x, 0, z), static geoms included, max_range_m on a miss (mj_multiRay).
 * Loop.distance(geom1, geom2, distmax_m) -> mj_geomDistance of the two geoms (distmax_m if farther).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#define MAX_MOTORS 16
#define MAX_RAYS 64

typedef double mjtNum;
typedef unsigned char mjtByte;
typedef void (*mj_step_fn)(const void *m, void *d);
typedef void (*mj_multiRay_fn)(const void *m, void *d, const mjtNum pnt[3], const mjtNum *vec, const mjtByte *geomgroup,
                               mjtByte flg_static, int bodyexclude, int *geomid, mjtNum *dist, mjtNum *normal,
                               int nray, mjtNum cutoff);
typedef mjtNum (*mj_geomDistance_fn)(const void *m, void *d, int geom1, int geom2, mjtNum distmax, mjtNum fromto[6]);

typedef struct {
    PyObject_HEAD
    mj_step_fn step;
    mj_multiRay_fn multi_ray;
    mj_geomDistance_fn geom_distance;
    const void *model;
    void *data;
    const double *qvel;  /* the motor dofs' speeds, rad/s (n_motors contiguous doubles in mjData) */
    double *qfrc;        /* the motor dofs' applied generalized forces, N·m */
    int n;
    double peak[MAX_MOTORS], w0[MAX_MOTORS];
    double damping, friction;
    int n_rays;
    double ray_vec[3 * MAX_RAYS], ray_dist[MAX_RAYS], max_range;
    int ray_geom[MAX_RAYS];
    mjtByte geomgroup[6];
    PyObject *owner;
} Loop;

static void *address(PyObject *obj) { return PyLong_AsVoidPtr(obj); }

static int Loop_init(Loop *self, PyObject *args, PyObject *kwds) {
    PyObject *step, *multi_ray, *geom_distance, *model, *data, *qvel, *qfrc, *owner;
    int n;
    if (kwds != NULL && PyDict_Size(kwds) > 0) {
        PyErr_SetString(PyExc_TypeError, "Loop takes positional arguments only");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "(OOO)OOOOiO", &step, &multi_ray, &geom_distance, &model, &data, &qvel, &qfrc, &n,
                          &owner))
        return -1;
    if (n < 1 || n > MAX_MOTORS) {
        PyErr_Format(PyExc_ValueError, "n_motors must be 1..%d, got %d", MAX_MOTORS, n);
        return -1;
    }
    self->step = (mj_step_fn)address(step);
    self->multi_ray = (mj_multiRay_fn)address(multi_ray);
    self->geom_distance = (mj_geomDistance_fn)address(geom_distance);
    self->model = address(model);
    self->data = address(data);
    self->qvel = address(qvel);
    self->qfrc = address(qfrc);
    if (PyErr_Occurred()) return -1;
    if (!self->step || !self->multi_ray || !self->geom_distance || !self->model || !self->data || !self->qvel || !self->qfrc) {
        PyErr_SetString(PyExc_ValueError, "null address");
        return -1;
    }
    self->n = n;
    for (int i = 0; i < n; i++) self->peak[i] = self->w0[i] = 0.0;
    self->damping = self->friction = 0.0;
    self->n_rays = 0;
    Py_XSETREF(self->owner, Py_NewRef(owner));
    return 0;
}

static void Loop_dealloc(Loop *self) {
    Py_XDECREF(self->owner);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* a sequence of exactly n floats into out; -1 with an exception otherwise */
static int read_doubles(PyObject *seq, double *out, int n, const char *what) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (fast == NULL) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %d values, got %zd", what, n, PySequence_Fast_GET_SIZE(fast));
        Py_DECREF(fast);
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (int i = 0; i < n; i++) {
        out[i] = PyFloat_AsDouble(items[i]);
        if (out[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *Loop_set_motor(Loop *self, PyObject *args) {
    PyObject *peak, *w0;
    double damping, friction;
    if (!PyArg_ParseTuple(args, "OOdd", &peak, &w0, &damping, &friction)) return NULL;
    if (read_doubles(peak, self->peak, self->n, "peak_nm") < 0) return NULL;
    if (read_doubles(w0, self->w0, self->n, "no_load_rad_s") < 0) return NULL;
    self->damping = damping;
    self->friction = friction;
    Py_RETURN_NONE;
}

static PyObject *float_list(const double *v, int n) {
    PyObject *list = PyList_New(n);
    if (list == NULL) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *f = PyFloat_FromDouble(v[i]);
        if (f == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, f);
    }
    return list;
}

static PyObject *Loop_run(Loop *self, PyObject *commands) {
    PyObject *fast = PySequence_Fast(commands, "commands must be a sequence of per-substep torque commands");
    if (fast == NULL) return NULL;
    Py_ssize_t substeps = PySequence_Fast_GET_SIZE(fast);
    PyObject **rows = PySequence_Fast_ITEMS(fast);
    const int n = self->n;
    const double damping = self->damping, friction = self->friction;
    double cmd[MAX_MOTORS], applied[MAX_MOTORS], motor[MAX_MOTORS];
    PyObject *last_row = NULL;
    for (int i = 0; i < n; i++) applied[i] = motor[i] = 0.0;
    for (Py_ssize_t s = 0; s < substeps; s++) {
        if (rows[s] != last_row) { /* the same command object in a row (no latency): parse it once */
            if (read_doubles(rows[s], cmd, n, "torque command") < 0) {
                Py_DECREF(fast);
                return NULL;
            }
            last_row = rows[s];
        }
        for (int i = 0; i < n; i++) {
            const double c = cmd[i], w = self->qvel[i], peak = self->peak[i];
            double env;
            /* back-EMF: driving torque falls linearly with speed in the driving direction; braking keeps the peak */
            if (c * w > 0) {
                const double frac = 1.0 - (w > 0 ? w : -w) / self->w0[i];
                env = frac > 0.0 ? peak * frac : 0.0;
            } else {
                env = peak;
            }
            const double tau = c > env ? env : (c < -env ? -env : c);
            motor[i] = tau;
            applied[i] = tau - damping * w - friction * tanh(w * 20.0);
        }
        for (int i = 0; i < n; i++) self->qfrc[i] = applied[i];
        self->step(self->model, self->data);
    }
    Py_DECREF(fast);
    PyObject *a = float_list(applied, n);
    if (a == NULL) return NULL;
    PyObject *m = float_list(motor, n);
    if (m == NULL) {
        Py_DECREF(a);
        return NULL;
    }
    return Py_BuildValue("(NN)", a, m); /* N: the tuple takes both references */
}

static PyObject *Loop_set_rays(Loop *self, PyObject *args) {
    PyObject *vec, *groups;
    double max_range;
    if (!PyArg_ParseTuple(args, "OOd", &vec, &groups, &max_range)) return NULL;
    Py_ssize_t n3 = PySequence_Size(vec);
    if (n3 < 0) return NULL;
    if (n3 % 3 != 0 || n3 / 3 > MAX_RAYS) {
        PyErr_Format(PyExc_ValueError, "directions: 3 values per ray and at most %d rays, got %zd values", MAX_RAYS, n3);
        return NULL;
    }
    double group[6];
    if (read_doubles(groups, group, 6, "geomgroup") < 0) return NULL;
    if (read_doubles(vec, self->ray_vec, (int)n3, "directions") < 0) return NULL;
    for (int i = 0; i < 6; i++) self->geomgroup[i] = group[i] != 0.0;
    self->n_rays = (int)(n3 / 3);
    self->max_range = max_range;
    Py_RETURN_NONE;
}

static PyObject *Loop_rays(Loop *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "rays(x_m, z_m)");
        return NULL;
    }
    const mjtNum pnt[3] = {PyFloat_AsDouble(args[0]), 0.0, PyFloat_AsDouble(args[1])};
    if (PyErr_Occurred()) return NULL;
    self->multi_ray(self->model, self->data, pnt, self->ray_vec, self->geomgroup, 1, -1, self->ray_geom,
                    self->ray_dist, NULL, self->n_rays, self->max_range);
    const double r_max = self->max_range;
    PyObject *out = PyList_New(self->n_rays);
    if (out == NULL) return NULL;
    for (int i = 0; i < self->n_rays; i++) {
        const double r = self->ray_dist[i];  /* -1 on a miss */
        PyObject *f = PyFloat_FromDouble(0.0 <= r && r < r_max ? r : r_max);
        if (f == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, f);
    }
    return out;
}

static PyObject *Loop_distance(Loop *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "distance(geom1, geom2, distmax_m)");
        return NULL;
    }
    const long g1 = PyLong_AsLong(args[0]), g2 = PyLong_AsLong(args[1]);
    const double distmax = PyFloat_AsDouble(args[2]);
    if (PyErr_Occurred()) return NULL;
    return PyFloat_FromDouble(self->geom_distance(self->model, self->data, (int)g1, (int)g2, distmax, NULL));
}

static PyMethodDef Loop_methods[] = {
    {"set_motor", (PyCFunction)Loop_set_motor, METH_VARARGS, "set_motor(peak_nm, no_load_rad_s, damping, friction)"},
    {"run", (PyCFunction)Loop_run, METH_O, "run(commands) -> (applied_nm, motor_nm) of the last substep"},
    {"set_rays", (PyCFunction)Loop_set_rays, METH_VARARGS, "set_rays(directions, geomgroup, max_range_m)"},
    {"rays", (PyCFunction)(void (*)(void))Loop_rays, METH_FASTCALL, "rays(x_m, z_m) -> ranges (m)"},
    {"distance", (PyCFunction)(void (*)(void))Loop_distance, METH_FASTCALL, "distance(geom1, geom2, distmax_m)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LoopType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sim._mjloop.Loop",
    .tp_basicsize = sizeof(Loop),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The ideal motor model and mj_step, once per substep (module docstring).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Loop_init,
    .tp_dealloc = (destructor)Loop_dealloc,
    .tp_methods = Loop_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_mjloop", "The MuJoCo biped's substep loop in C (see sim/_mjloop.c).", -1, NULL,
};

PyMODINIT_FUNC PyInit__mjloop(void) {
    if (PyType_Ready(&LoopType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Loop", (PyObject *)&LoopType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

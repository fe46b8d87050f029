# TensorFlow Lite Micro as the static library `tflm`, with CMSIS-NN's optimized kernels
# (written by tinyc; see README.md next to it).
#
# Sources, first match wins:
#   TFLM_DIR         a tflite-micro checkout (-DTFLM_DIR=... or the environment variable);
#                    otherwise commit ${TINYC_TFLM_COMMIT} is fetched at build time.
#   CMSIS_NN_DIR, FLATBUFFERS_DIR, GEMMLOWP_DIR, RUY_DIR
#                    local copies of the third-party code TFLM needs; otherwise the copies
#                    TFLM's own Makefile downloaded into TFLM_DIR/.../make/downloads; otherwise
#                    the pinned versions TFLM itself uses are fetched.
# The file lists follow TFLM's Makefile: every library source outside tests, with the
# kernels of kernels/cmsis_nn replacing the reference kernels of the same name.

include_guard(GLOBAL)
include(FetchContent)

set(TINYC_TFLM_COMMIT {{ deps.tflm.commit }})

# Offline, a fetch would retry for about 90 s before failing: one short request to the
# server first, and a one-line error naming the variable that points at a local copy.
function(tinyc_check_reachable var name url)
  string(REGEX MATCH "^https?://[^/]+" _host "${url}")
  if(NOT _host)
    return()
  endif()
  file(DOWNLOAD "${_host}/robots.txt" "${CMAKE_BINARY_DIR}/tinyc-reachable.txt"
       TIMEOUT 10 STATUS _status)
  list(GET _status 0 _code)
  # curl: 5/6 cannot resolve, 7 cannot connect, 28 timeout, 35 TLS handshake, 56 receive
  if(_code MATCHES "^(5|6|7|28|35|56)$")
    list(GET _status 1 _why)
    message(FATAL_ERROR "tinyc: cannot fetch ${name}: ${_host} is not reachable (${_why}); "
                        "set ${var} to a local copy (see the tinyc README, TFLM and CMSIS-NN)")
  endif()
endfunction()

function(tinyc_tflm_dep var name url md5 downloads_subdir)
  if(NOT ${var} AND DEFINED ENV{${var}})
    set(${var} "$ENV{${var}}")
  endif()
  if(${var})
    get_filename_component(_dir "${${var}}" ABSOLUTE)
  elseif(downloads_subdir AND EXISTS "${TFLM_DIR}/tensorflow/lite/micro/tools/make/downloads/${downloads_subdir}")
    set(_dir "${TFLM_DIR}/tensorflow/lite/micro/tools/make/downloads/${downloads_subdir}")
  else()
    tinyc_check_reachable(${var} ${name} "${url}")
    message(STATUS "tinyc: fetching ${name} from ${url} (set ${var} to use a local copy)")
    set(FETCHCONTENT_QUIET OFF)  # show the download's progress
    if(md5)
      FetchContent_Declare(${name} URL ${url} URL_HASH MD5=${md5}
                           SOURCE_SUBDIR tinyc-no-cmake DOWNLOAD_EXTRACT_TIMESTAMP TRUE)
    else()
      FetchContent_Declare(${name} URL ${url}
                           SOURCE_SUBDIR tinyc-no-cmake DOWNLOAD_EXTRACT_TIMESTAMP TRUE)
    endif()
    FetchContent_MakeAvailable(${name})
    set(_dir "${${name}_SOURCE_DIR}")
  endif()
  if(NOT EXISTS "${_dir}")
    message(FATAL_ERROR "tinyc: ${var}=${_dir} does not exist")
  endif()
  set(${var} "${_dir}" PARENT_SCOPE)
endfunction()

if(NOT TFLM_DIR AND DEFINED ENV{TFLM_DIR})
  set(TFLM_DIR "$ENV{TFLM_DIR}")
endif()
if(NOT TFLM_DIR)
  tinyc_tflm_dep(TFLM_DIR tflite_micro
    "https://github.com/tensorflow/tflite-micro/archive/${TINYC_TFLM_COMMIT}.zip" "" "")
endif()
get_filename_component(TFLM_DIR "${TFLM_DIR}" ABSOLUTE)
if(NOT EXISTS "${TFLM_DIR}/tensorflow/lite/micro/micro_interpreter.h")
  message(FATAL_ERROR "tinyc: TFLM_DIR=${TFLM_DIR} is not a tflite-micro source tree")
endif()

{% for d in deps.third_party %}
tinyc_tflm_dep({{ d.var }} {{ d.name }} "{{ d.url }}" "{{ d.md5 }}" "{{ d.downloads }}")
{% endfor %}
{% for d in deps.ethos_u %}
if(TINYC_ETHOS_U)
  tinyc_tflm_dep({{ d.var }} {{ d.name }} "{{ d.url }}" "{{ d.md5 }}" "{{ d.downloads }}")
endif()
{% endfor %}

set(_micro "${TFLM_DIR}/tensorflow/lite/micro")
file(GLOB _tflm_core
  "${_micro}/*.cc"
  "${_micro}/arena_allocator/*.cc"
  "${_micro}/memory_planner/*.cc"
  "${_micro}/tflite_bridge/*.cc")
file(GLOB_RECURSE _tfl_shared
  "${TFLM_DIR}/tensorflow/lite/*.cc" "${TFLM_DIR}/tensorflow/lite/*.c"
  "${TFLM_DIR}/tensorflow/compiler/*.cc" "${TFLM_DIR}/tensorflow/compiler/*.c")
list(FILTER _tfl_shared EXCLUDE REGEX "/tensorflow/lite/(micro|experimental)/")
list(FILTER _tfl_shared EXCLUDE REGEX "/tensorflow/lite/array\\.cc$")
file(GLOB _tflm_kernels "${_micro}/kernels/*.cc")
list(FILTER _tflm_kernels EXCLUDE REGEX "(_test|_test_common|_generated_data)\\.cc$")
list(FILTER _tflm_core EXCLUDE REGEX "_test\\.cc$")

# Specialization, as TFLM's specialize_files.py: a file of the same name in the
# specialized directory replaces the generic one.
function(tinyc_specialize list_var dir)
  set(_out "")
  foreach(f IN LISTS ${list_var})
    get_filename_component(_name "${f}" NAME)
    if(EXISTS "${dir}/${_name}")
      list(APPEND _out "${dir}/${_name}")
    else()
      list(APPEND _out "${f}")
    endif()
  endforeach()
  set(${list_var} "${_out}" PARENT_SCOPE)
endfunction()
tinyc_specialize(_tflm_kernels "${_micro}/kernels/cmsis_nn")
{% if ethos_u %}
if(TINYC_ETHOS_U)
  tinyc_specialize(_tflm_kernels "${_micro}/kernels/ethos_u")
endif()
{% endif %}
# debug_log.cc of cortex_m_generic prints through a callback the firmware registers.
tinyc_specialize(_tflm_core "${_micro}/cortex_m_generic")
list(FILTER _tflm_core EXCLUDE REGEX "cortex_m_generic/micro_time\\.cc$")
list(APPEND _tflm_core "${_micro}/micro_time.cc")

file(GLOB_RECURSE _cmsis_nn_srcs "${CMSIS_NN_DIR}/Source/*.c")
list(FILTER _cmsis_nn_srcs EXCLUDE REGEX "(_f16|_f32|arm_nntables_flt)\\.c$")

set(_ethosu_srcs "")
{% if ethos_u %}
if(TINYC_ETHOS_U)
  # Ethos-U: TFLM's ethos-u operator and the NPU driver
  set(_ethosu_srcs
    "${ETHOSU_DRIVER_DIR}/src/ethosu_driver.c"
    "${ETHOSU_DRIVER_DIR}/src/ethosu_pmu.c"
    "${ETHOSU_DRIVER_DIR}/src/ethosu_device_{{ 'u85' if npu_arch == 'u85' else 'u55_u65' }}.c")
  target_include_directories(tflm_headers SYSTEM INTERFACE
    "${ETHOSU_DRIVER_DIR}/include" "${ETHOSU_DRIVER_DIR}/src" "${CMSIS_DIR}/CMSIS/Core/Include")
  target_compile_definitions(tflm_headers INTERFACE
    TINYC_NPU ETHOSU_ARCH={{ npu_arch }} ETHOS{{ npu_arch|upper }}
    ETHOSU_LOG_SEVERITY=ETHOSU_LOG_WARN)
endif()
{% endif %}

# Headers and definitions every user of TFLM needs.
add_library(tflm_headers INTERFACE)
target_include_directories(tflm_headers SYSTEM INTERFACE
  "${TFLM_DIR}"
  "${FLATBUFFERS_DIR}/include"
  "${GEMMLOWP_DIR}"
  "${RUY_DIR}"
  "${CMSIS_NN_DIR}"
  "${CMSIS_NN_DIR}/Include")
target_compile_definitions(tflm_headers INTERFACE
  TF_LITE_STATIC_MEMORY
  TF_LITE_DISABLE_X86_NEON
  TF_LITE_MCU_DEBUG_LOG
  CMSIS_NN
  KERNELS_OPTIMIZED_FOR_SPEED
  ARM_NN_ENABLE_F16=0
  ARM_NN_ENABLE_F32=0
  FLATBUFFERS_LOCALE_INDEPENDENT=0
  FLATBUFFERS_PREFER_PRINTF=1
  $<$<NOT:$<BOOL:${TINYC_TFLM_LOGS}>>:TF_LITE_STRIP_ERROR_STRINGS>
  NDEBUG)

set(TFLM_LIB "" CACHE FILEPATH
    "a libtflm.a this file built before, for the same core and flags (skips building TFLM)")
if(TFLM_LIB)
  add_library(tflm STATIC IMPORTED)
  set_target_properties(tflm PROPERTIES IMPORTED_LOCATION "${TFLM_LIB}"
                        INTERFACE_LINK_LIBRARIES tflm_headers)
  return()
endif()

add_library(tflm STATIC ${_tflm_core} ${_tfl_shared} ${_tflm_kernels} ${_cmsis_nn_srcs} ${_ethosu_srcs})
target_link_libraries(tflm PUBLIC tflm_headers)
target_compile_options(tflm PRIVATE
  $<$<COMPILE_LANGUAGE:CXX>:-fno-rtti -fno-exceptions -fno-threadsafe-statics -std=c++17>
  $<$<COMPILE_LANGUAGE:C>:-std=c17>
  -ffunction-sections -fdata-sections -fno-unwind-tables
  -fno-asynchronous-unwind-tables -fmessage-length=0 -w)
# TFLM's Makefile: the interpreter for size, kernels for speed.
set_source_files_properties(${_tflm_core} ${_tfl_shared} PROPERTIES COMPILE_OPTIONS "-Os")
set_source_files_properties(${_tflm_kernels} ${_cmsis_nn_srcs} PROPERTIES COMPILE_OPTIONS "-O2")

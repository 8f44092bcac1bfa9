# usearch 2.26.2's Node binding (index.cpp, from the package's javascript/lib.cpp) with one
# addition: saveAsync, a save that runs off the calling thread. Built from the sources the npm
# package ships (node_modules/usearch: headers and NumKong), with the package's own flags.
{
    "variables": {
        "usearch_root": "../../node_modules/usearch",
        "numkong_root": "../../node_modules/usearch/numkong",
    },
    "includes": ["../../node_modules/usearch/numkong/numkong.gypi"],
    "targets": [
        {
            "target_name": "jade_usearch",
            "sources": ["index.cpp"],
            "dependencies": [
                "<!(node -p \"require('node-addon-api').gyp\")",
                "numkong_lib",
            ],
            "cflags": ["-fexceptions", "-Wno-unknown-pragmas", "-Wno-maybe-uninitialized"],
            "cflags_cc": ["-fexceptions", "-Wno-unknown-pragmas", "-Wno-maybe-uninitialized", "-std=c++17"],
            "include_dirs": [
                "<!@(node -p \"require('node-addon-api').include\")",
                "<(usearch_root)/include",
            ],
            "defines": ["USEARCH_USE_NUMKONG=1", "NK_DYNAMIC_DISPATCH=1", "USEARCH_USE_OPENMP=0"],
        }
    ]
}

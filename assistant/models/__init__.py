"""The models, each behind LangChain's interface and chosen by a name: chat models (`llm`; the local GGUF in
`llama`, run in its own process by `model_process` and `worker`, its packaged file in `model_file`, loaded
into llama.cpp by `model_load`; `build` checks the installed llama.cpp) and embeddings (`embeddings`).
`factory` picks among them."""

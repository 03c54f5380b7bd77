print("sfkd")
